"""The object storage that holds videos: ``STORAGES["videos"]``, the filesystem or S3.

Stored videos are named by a *source*, the string a scenario is created with: a path relative to
MISIS_VIDEO_ROOT on the filesystem, ``s3://<bucket>/<key>`` on S3. An s3:// source may name only
the buckets in MISIS_S3_BUCKETS (the credentials may read more: the user must not), checked when
the scenario is created and again at each open; the runner opens it through a presigned URL
(``presigned_url``), so FFmpeg streams it and nothing is copied to disk.

What a user is told about an object does not say whether its bucket or key exists, or whether
the credentials may read it: one text for all three (``UNREADABLE``), the reason in the log.
What does not depend on the object is told (a store that does not answer, credentials the store
does not know or whose signature it refuses): the store checks those before it looks at the
bucket, so they are the same answer for every source, and the operator needs to see them.

Importing this module is cheap (no boto3): the source validation of the API imports it.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.files.storage import Storage, storages

from misis.exceptions import ApiError
from misis.logs import scenario_id_var
from sources.base import SourceError
from sources.redact import redact

if TYPE_CHECKING:
    from storages.backends.s3 import S3Storage

logger = logging.getLogger(__name__)

VIDEOS = "videos"  # the STORAGES alias
S3_SCHEME = "s3://"
NOT_CONFIGURED = "s3 sources need object storage configured (AWS_STORAGE_BUCKET_NAME and friends)"
S3_OFF = "s3 sources are turned off here (MISIS_S3_BUCKETS is empty)"
# The same text for a bucket that exists and one that does not.
NOT_LISTED = "bucket {bucket!r} is not one that s3 sources may name (MISIS_S3_BUCKETS)"
UNREADABLE = "{source}: no such object, or not readable with the service's credentials"
# Stores do not agree on these: SeaweedFS reads uploads/a.mp4 for "/uploads/a.mp4",
# "uploads//a.mp4" and "uploads\\a.mp4", and others resolve "..". A key must name one object
# only, or a check of the key (the bucket, the owner of an upload) would hold for another one.
BAD_KEY = (
    "s3 key must not have empty, '.' or '..' parts, backslashes or control characters"
    " (stores read another object for such a key)"
)
# Loose on purpose: S3-compatible stores accept more than AWS's rules; this only keeps out what
# would make a malformed request (slashes, userinfo, spaces).
BUCKET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
# Error codes of a store that does not accept who we are: checked before the bucket or the key
# is looked at, so the same for every object.
CREDENTIAL_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}
)
# ... or what we may do (on an upload, to the configured bucket, under a name of ours).
REFUSED_CODES = CREDENTIAL_CODES | {"AccessDenied"}

__all__ = [
    "ObjectStorageError",
    "parse_s3",
    "presigned_url",
    "s3_configured",
    "stored_source",
    "video_storage",
]


class ObjectStorageError(SourceError, ApiError):
    """The object store refused the request or did not answer: the service is unavailable.

    The message is shown to the user and holds no secret.
    """

    status_code = 503


def video_storage() -> Storage:
    return storages[VIDEOS]


def _s3(storage: Storage) -> S3Storage | None:
    from storages.backends.s3 import S3Storage  # boto3: only once S3 is asked about

    return storage if isinstance(storage, S3Storage) else None


def s3_configured() -> bool:
    """Whether videos live in S3, so that s3:// sources can be read."""
    return _s3(video_storage()) is not None


def _ambiguous_key(key: str) -> bool:
    return (
        "\\" in key
        or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in key)
        or any(part in ("", ".", "..") for part in key.split("/"))
    )


def parse_s3(source: str) -> tuple[str, str]:
    """``s3://bucket/key`` as (bucket, key), for a bucket in MISIS_S3_BUCKETS only.

    The key is taken literally, as the AWS CLI does, and refused when a store could read it as
    another key. Raises SourceError with a message for the user.
    """
    if source[: len(S3_SCHEME)].lower() != S3_SCHEME:
        raise SourceError("not an s3:// source")
    bucket, _, key = source[len(S3_SCHEME) :].partition("/")
    if not bucket or not key:
        raise SourceError("s3 source needs a key: s3://bucket/key")
    if not BUCKET_NAME.fullmatch(bucket):
        raise SourceError(f"invalid bucket name: {bucket!r}")
    if _ambiguous_key(key):
        raise SourceError(BAD_KEY)
    allowed = settings.MISIS_S3_BUCKETS
    if bucket not in allowed:
        if not allowed:
            raise SourceError(S3_OFF if s3_configured() else NOT_CONFIGURED)
        raise SourceError(NOT_LISTED.format(bucket=bucket))
    return bucket, key


def stored_source(name: str) -> str:
    """The source of a file saved in the video storage under ``name``."""
    storage = video_storage()
    s3 = _s3(storage)
    if s3 is None:
        # The filesystem storage's location is the video root: the name is the relative path.
        return name
    location = s3.location.strip("/")
    return f"{S3_SCHEME}{s3.bucket_name}/{location + '/' if location else ''}{name}"


def describe(exc: Exception, *, bucket: str, endpoint: str | None = None) -> str:
    """A boto3 failure as a sentence: no key, no signature, no presigned URL. Shown to the user
    for what is the store's or the operator's (an upload to the configured bucket, the store's
    state, the credentials); a failure about one object reads UNREADABLE instead (see above)."""
    from botocore.exceptions import (
        ClientError,
        NoCredentialsError,
        PartialCredentialsError,
        ReadTimeoutError,
    )
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in REFUSED_CODES or status == 403:
            # A HEAD has no body, so a refusal there is only "403".
            shown = "403 Forbidden" if code in ("", "403") else code
            return f"object storage refused the credentials ({shown})"
        if code == "NoSuchBucket":
            return f"no such bucket: {bucket}"
        return f"object storage answered {status} ({code or 'no error code'})"
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return "object storage credentials are missing (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
    if isinstance(exc, BotoConnectionError | ReadTimeoutError):
        where = f" at {redact(endpoint)}" if endpoint else ""
        return f"object storage{where} is unreachable"
    return f"object storage error ({type(exc).__name__})"


def _unreadable(source: str, reason: str) -> SourceError:
    """The one answer for a missing bucket, a missing key and a refused read; the log says which."""
    logger.warning(
        "s3 source %s (scenario %s) not readable: %s",
        redact(source),
        scenario_id_var.get() or "-",
        reason,
    )
    return SourceError(UNREADABLE.format(source=redact(source)))


def _missing(client: Any, source: str, bucket: str) -> SourceError:
    """After a 404 on the object: the bucket or the key? Asked for the log only."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            return _unreadable(source, f"no such bucket: {bucket}")
        reason = describe(exc, bucket=bucket)
        return _unreadable(source, f"404 on the object; the bucket check says: {reason}")
    except BotoCoreError as exc:
        reason = describe(exc, bucket=bucket)
        return _unreadable(source, f"404 on the object; the bucket check says: {reason}")
    return _unreadable(source, f"no such key in bucket {bucket}")


def _refused(client: Any, source: str, bucket: str, key: str, head_error: Exception) -> SourceError:
    """After a 403 on the HEAD (no body, so no reason): one ranged GET, whose error body names
    the reason. Credentials the store refuses are the operator's to fix (503); any other refusal
    reads as a missing object."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client.get_object(Bucket=bucket, Key=key, Range="bytes=0-0")["Body"].close()
    except (ClientError, BotoCoreError) as exc:
        head_error = exc
    code = ""
    if isinstance(head_error, ClientError):
        code = str(head_error.response.get("Error", {}).get("Code") or "")
    if code in CREDENTIAL_CODES:
        return ObjectStorageError(describe(head_error, bucket=bucket))
    return _unreadable(source, f"refused ({code or '403 Forbidden'})")


def presigned_url(source: str, *, expires: int = 3600) -> str:
    """A presigned GET URL of an ``s3://bucket/key`` source, valid ``expires`` seconds.

    Checks first the bucket (MISIS_S3_BUCKETS, parse_s3) and that the object can be read (HEAD),
    with the client and credentials of the video storage. Raises SourceError with a message for
    the user: UNREADABLE for a missing bucket or key or a refused read, alike;
    ObjectStorageError when the store refuses the credentials, fails or does not answer. The URL
    itself carries a signature: do not log it.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = parse_s3(source)
    s3 = _s3(video_storage())
    if s3 is None:
        raise SourceError(NOT_CONFIGURED)
    client = s3.connection.meta.client
    try:
        client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if status == 404:
            raise _missing(client, source, bucket) from None
        if status == 403:
            raise _refused(client, source, bucket, key, exc) from None
        if status >= 500:
            raise ObjectStorageError(describe(exc, bucket=bucket)) from None
        # Any other answer about this object (a redirect to another region, 400 for an object
        # in Glacier, ...) may differ between keys: told like a missing one.
        raise _unreadable(source, describe(exc, bucket=bucket)) from None
    except BotoCoreError as exc:
        raise ObjectStorageError(
            describe(exc, bucket=bucket, endpoint=client.meta.endpoint_url)
        ) from None
    return str(
        client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires
        )
    )
