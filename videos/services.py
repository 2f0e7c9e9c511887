"""Uploaded videos: checked to be a readable video first (videos/content.py), then stored
(sources/storage.py) and recorded with their owner (sources.models.Upload).

``video_check_size`` and ``video_check_quota`` (before the body is read) and ``video_store``
(the upload) raise VideoRejected (400) or VideoTooLarge (413: over the upload limit, or over the
user's quota) for bad input, and ObjectStorageError (503) when the store refuses or is down;
misis/exceptions.py turns them into answers. Nothing is left behind on any failure: the content
is checked before anything is stored, a failed save is removed, and the file and its Upload row
are kept together or not at all.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Any

from boto3.exceptions import Boto3Error
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from sources.models import Upload
from sources.selectors import UPLOAD_PREFIX, upload_used
from sources.storage import ObjectStorageError, describe, stored_source, video_storage
from videos.content import (
    VideoRejected,
    VideoTooLarge,
    video_content_check,
    video_extension_check,
)

logger = logging.getLogger(__name__)

# Room for the multipart boundaries and part headers around the file in the request body.
MULTIPART_OVERHEAD = 64 * 1024


@dataclass(frozen=True)
class StoredVideo:
    source: str  # what POST /scenario/ takes: a path in the video root, or s3://bucket/key
    size: int
    frames: int
    width: int
    height: int
    fps: float


def _too_large(limit: int) -> VideoTooLarge:
    return VideoTooLarge(f"the file is larger than the upload limit of {limit} bytes")


def video_check_size(*, content_length: str | int | None) -> None:
    """Refuses a request body too large to hold an acceptable upload.

    Call it before the body is read: a refused upload then costs neither disk nor the time to
    receive it. A missing or malformed length passes (Django reads no body then).
    """
    limit = settings.MISIS_UPLOAD_MAX_BYTES
    try:
        length = int(content_length or 0)
    except (TypeError, ValueError):
        return
    if length > limit + MULTIPART_OVERHEAD:
        raise _too_large(limit)


def _over_quota(*, used: int, quota: int) -> VideoTooLarge:
    return VideoTooLarge(f"upload quota of {quota} bytes reached: {used} used")


def video_check_quota(*, user: Any, content_length: str | int | None) -> None:
    """Refuses a request body that cannot fit in what is left of the user's upload quota
    (MISIS_QUOTA_UPLOAD_BYTES). Call it before the body is read; ``video_store`` checks again
    with the file's own size, under a lock. A missing or malformed length passes."""
    quota = settings.MISIS_QUOTA_UPLOAD_BYTES
    if quota <= 0:
        return
    try:
        length = int(content_length or 0)
    except (TypeError, ValueError):
        return
    used = upload_used(user=user)
    if length > quota - used + MULTIPART_OVERHEAD:
        raise _over_quota(used=used, quota=quota)


def _lock_quota(*, user: Any, size: int) -> None:
    """Inside a transaction: locks the user's row until it ends, then refuses ``size`` more
    bytes over the quota. Two uploads of one user thus check and record one after the other.

    FOR NO KEY UPDATE: rows that only point at the user (a scenario being created) still go in.
    """
    get_user_model().objects.select_for_update(no_key=True).filter(pk=user.pk).first()
    quota = settings.MISIS_QUOTA_UPLOAD_BYTES
    if quota <= 0:
        return
    used = upload_used(user=user)
    if used + size > quota:
        raise _over_quota(used=used, quota=quota)


def _remove(name: str) -> None:
    try:
        video_storage().delete(name)
    except Exception:  # the store is down or refuses: nothing more can be done from here
        logger.warning("could not remove the stored upload %s", name, exc_info=True)


def _save(name: str, file: UploadedFile[bytes]) -> str:
    """Saves the upload; on failure removes whatever part of it reached the storage."""
    storage = video_storage()
    try:
        return storage.save(name, file)
    except (OSError, BotoCoreError, ClientError, Boto3Error) as exc:
        _remove(name)
        if isinstance(exc, OSError):
            message = f"video storage cannot write the file ({exc.strerror or type(exc).__name__})"
        else:
            bucket = str(getattr(storage, "bucket_name", ""))
            message = describe(exc, bucket=bucket, endpoint=getattr(storage, "endpoint_url", None))
        logger.warning("could not store upload %s: %s", name, message)
        raise ObjectStorageError(message) from exc


def video_store(*, file: UploadedFile[bytes], user: Any) -> StoredVideo:
    """Checks that ``file`` is a video FFmpeg reads (a decoded frame, a frame count), then
    stores it under a new, unguessable name in the video storage, records it as ``user``'s
    (an Upload row, counted in their quota) and returns its source.

    Raises VideoRejected / VideoTooLarge before anything is stored, ObjectStorageError when
    the store fails (nothing is left in it then).
    """
    try:
        ext = video_extension_check(filename=file.name)
        limit = settings.MISIS_UPLOAD_MAX_BYTES
        if file.size is None or file.size > limit:
            raise _too_large(limit)
        if file.size == 0:
            raise VideoRejected("the file is empty")
        info = video_content_check(file=file, ext=ext)
    except VideoRejected as exc:
        logger.info("upload of user %s refused: %s", user.pk, exc.message)
        raise
    # 128 random bits: the name is not for anyone else to find (it is refused to them anyway).
    name = f"{UPLOAD_PREFIX}{secrets.token_hex(16)}.{ext}"
    saved: str | None = None
    try:
        # One transaction around check, save and record: the user's row stays locked while the
        # file goes to the store (their next upload waits), and a row is never without its file.
        with transaction.atomic():
            _lock_quota(user=user, size=file.size)
            saved = _save(name, file)
            upload = Upload.objects.create(owner=user, source=stored_source(saved), size=file.size)
    except VideoTooLarge as exc:
        logger.info("upload of user %s refused: %s", user.pk, exc.message)
        raise
    except BaseException:
        if saved is not None:  # saved, but not recorded (or the commit failed): not kept
            _remove(saved)
        raise
    video = StoredVideo(source=upload.source, size=upload.size, **info)
    logger.info(
        "user %s uploaded %s (%d bytes, %d frames, %dx%d)",
        user.pk,
        video.source,
        video.size,
        video.frames,
        video.width,
        video.height,
    )
    return video
