"""Reads. Owner scoping of uploads lives here: another user's upload does not exist for you.

An *upload source* is one under the upload prefix: ``uploads/...`` in the video root, or
``s3://<bucket>/uploads/...`` (after AWS_LOCATION, when set). Such a source is visible to the
owner of its Upload row and to staff; with no row (a name nobody uploaded, or a file stored
before uploads had owners) it is visible to staff only: it fails closed. Staff see every upload,
as they see every scenario.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Sum

from sources.base import SourceError
from sources.local import FILE_NOT_FOUND, resolve_local
from sources.models import Upload
from sources.redact import redact
from sources.registry import scheme_of
from sources.storage import S3_SCHEME, UNREADABLE, parse_s3

UPLOAD_PREFIX = "uploads/"

__all__ = ["UPLOAD_PREFIX", "upload_not_found", "upload_source", "upload_used", "upload_visible"]


def _s3_location() -> str:
    location = str(getattr(settings, "AWS_LOCATION", "") or "").strip("/")
    return f"{location}/" if location else ""


def _canonical(source: str) -> str | None:
    """The one spelling of a stored-file source; None when it names no stored file, or is
    refused anyway (outside the video root, a bucket not listed, an ambiguous key)."""
    scheme = scheme_of(source)
    if not scheme:
        try:
            path = resolve_local(source)
        except SourceError:
            return None
        return path.relative_to(Path(settings.MISIS_VIDEO_ROOT).resolve()).as_posix()
    if scheme == "s3":
        try:
            bucket, key = parse_s3(source)
        except SourceError:
            return None
        return f"s3://{bucket}/{key}"
    return None


def upload_source(source: str) -> str | None:
    """The upload a source names, spelt as its Upload row holds it; None for any other source.

    Local paths are resolved first: "./uploads/a.mp4", "uploads//a.mp4" or a link to an upload
    are that upload. Also an upload: anything that has an Upload row (one stored under another
    AWS_LOCATION than today's, say).
    """
    name = _canonical(source)
    if name is None:
        return None
    if name.startswith(S3_SCHEME):
        key = name[len(S3_SCHEME) :].partition("/")[2]
        under = key.startswith((UPLOAD_PREFIX, _s3_location() + UPLOAD_PREFIX))
    else:
        under = f"{name}/".startswith(UPLOAD_PREFIX)  # the folder itself, or a file in it
    if under or Upload.objects.filter(source=name).exists():
        return name
    return None


def upload_visible(*, source: str, user: Any) -> bool:
    """Whether ``user`` may start a scenario on ``source``: True when the source is not an upload,
    or is an upload ``user`` owns, or ``user`` is staff. No user (or an anonymous one): False for
    every upload."""
    name = upload_source(source)
    if name is None:
        return True
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    if getattr(user, "is_staff", False):
        return True
    return Upload.objects.filter(source=name, owner_id=user.pk).exists()


def upload_not_found(source: str) -> str:
    """The message for an upload that is not the user's: that of a source that does not exist."""
    if scheme_of(source) == "s3":
        return UNREADABLE.format(source=redact(source))
    return FILE_NOT_FOUND.format(source=source)


def upload_used(*, user: Any) -> int:
    """Bytes of uploads ``user`` keeps stored: their quota use."""
    total = Upload.objects.filter(owner_id=user.pk).aggregate(total=Sum("size"))["total"]
    return int(total or 0)
