"""The two storage backends behind ``STORAGES["videos"]`` (misis/settings/base.py)."""

from __future__ import annotations

import os
from typing import Any

from botocore.config import Config
from django.conf import settings
from django.core.files.storage import FileSystemStorage
from storages.backends.s3 import S3Storage

# An upload or a HEAD must not hang an API request for minutes on a store that does not
# answer (boto3's defaults: 60 s to connect, 5 attempts).
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 60.0
MAX_ATTEMPTS = 3


class VideoFileSystemStorage(FileSystemStorage):
    """Files under MISIS_VIDEO_ROOT, read at each use rather than once: tests move the root."""

    # Set by FileSystemStorage.__init__ (the ``location`` argument); django-stubs omit it.
    _location: str | None

    @property
    def base_location(self) -> str:
        return str(self._value_or_setting(self._location, settings.MISIS_VIDEO_ROOT))

    @property
    def location(self) -> str:
        return os.path.abspath(self.base_location)


class VideoS3Storage(S3Storage):  # type: ignore[misc]  # django-storages ships no types: Any
    """django-storages' S3 storage (every AWS_* setting), with bounded timeouts and retries.

    Signature version 4 unless AWS_S3_SIGNATURE_VERSION says otherwise: boto3 would presign
    with version 2 for a custom endpoint, which AWS regions opened since 2014 refuse.
    """

    client_config: Any  # a botocore Config (botocore ships no types)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client_config = self.client_config.merge(
            Config(
                signature_version=self.signature_version or "s3v4",
                connect_timeout=CONNECT_TIMEOUT_S,
                read_timeout=READ_TIMEOUT_S,
                retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
            )
        )
