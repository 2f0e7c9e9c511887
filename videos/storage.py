"""The object storage that holds videos: ``STORAGES["videos"]``, the filesystem or S3.

Stored videos are named by a *source*, the string a scenario is created with: a path relative to
MISIS_VIDEO_ROOT on the filesystem, ``s3://<bucket>/<key>`` on S3. An s3:// source may name any
bucket the configured credentials can read, not only AWS_STORAGE_BUCKET_NAME; the runner opens
it through a presigned URL (``presigned_url``), so FFmpeg streams it and nothing is copied to disk.

Importing this module is cheap (no boto3): the source validation of the API imports it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from django.core.files.storage import Storage, storages

from runner.redact import redact
from sources.base import SourceError

if TYPE_CHECKING:
    from storages.backends.s3 import S3Storage

VIDEOS = "videos"  # the STORAGES alias
S3_SCHEME = "s3://"
NOT_CONFIGURED = "s3 sources need object storage configured (AWS_STORAGE_BUCKET_NAME and friends)"
# Loose on purpose: S3-compatible stores accept more than AWS's rules; this only keeps out what
# would make a malformed request (slashes, userinfo, spaces).
BUCKET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
# Error codes of a store that does not accept who we are (or what we may do).
REFUSED_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "ExpiredToken"}
)

__all__ = [
    "ObjectStorageError",
    "parse_s3",
    "presigned_url",
    "s3_configured",
    "stored_source",
    "video_storage",
]


class ObjectStorageError(SourceError):
    """The object store refused the request or did not answer: the service is unavailable.

    The message is shown to the user and holds no secret.
    """


def video_storage() -> Storage:
    return storages[VIDEOS]


def _s3(storage: Storage) -> S3Storage | None:
    from storages.backends.s3 import S3Storage  # boto3: only once S3 is asked about

    return storage if isinstance(storage, S3Storage) else None


def s3_configured() -> bool:
    """Whether videos live in S3, so that s3:// sources can be read."""
    return _s3(video_storage()) is not None


def parse_s3(source: str) -> tuple[str, str]:
    """``s3://bucket/key`` as (bucket, key); the key is taken literally, as the AWS CLI does."""
    if source[: len(S3_SCHEME)].lower() != S3_SCHEME:
        raise SourceError("not an s3:// source")
    bucket, _, key = source[len(S3_SCHEME) :].partition("/")
    if not bucket or not key:
        raise SourceError("s3 source needs a key: s3://bucket/key")
    if not BUCKET_NAME.fullmatch(bucket):
        raise SourceError(f"invalid bucket name: {bucket!r}")
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
    """A boto3 failure as a sentence for the user: no key, no signature, no presigned URL."""
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


def _missing(client: Any, bucket: str, key: str) -> SourceError:
    """After a 404 on the object: the bucket or the key?"""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            return SourceError(f"no such bucket: {bucket}")
        return ObjectStorageError(describe(exc, bucket=bucket, endpoint=client.meta.endpoint_url))
    except BotoCoreError as exc:
        return ObjectStorageError(describe(exc, bucket=bucket, endpoint=client.meta.endpoint_url))
    return SourceError(f"no such key in bucket {bucket}: {key}")


def _refused(client: Any, bucket: str, key: str, head_error: Exception) -> ObjectStorageError:
    """After a 403 on the HEAD: one ranged GET, whose error body names the reason."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client.get_object(Bucket=bucket, Key=key, Range="bytes=0-0")["Body"].close()
    except (ClientError, BotoCoreError) as exc:
        head_error = exc
    return ObjectStorageError(describe(head_error, bucket=bucket))


def presigned_url(source: str, *, expires: int = 3600) -> str:
    """A presigned GET URL of an ``s3://bucket/key`` source, valid ``expires`` seconds.

    Checks first that the object exists (HEAD), with the client and credentials of the video
    storage. Raises SourceError (ObjectStorageError when the store refuses or does not answer)
    with a message for the user. The URL itself carries a signature: do not log it.
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
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404:
            raise _missing(client, bucket, key) from None
        if status == 403:
            raise _refused(client, bucket, key, exc) from None
        raise ObjectStorageError(describe(exc, bucket=bucket)) from None
    except BotoCoreError as exc:
        raise ObjectStorageError(
            describe(exc, bucket=bucket, endpoint=client.meta.endpoint_url)
        ) from None
    return str(
        client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires
        )
    )
