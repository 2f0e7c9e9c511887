"""Uploaded videos: checked to be a readable video first, then stored (sources/storage.py) and
recorded with their owner (sources.models.Upload).

``video_check_size`` and ``video_check_quota`` (before the body is read) and ``video_store``
(the upload) raise VideoRejected (400) or VideoTooLarge (413: over the upload limit, or over the
user's quota) for bad input, and ObjectStorageError (503) when the store refuses or is down;
misis/exceptions.py turns them into answers. Nothing is left behind on any failure: the content
is checked before anything is stored, a failed save is removed, and the file and its Upload row
are kept together or not at all.
"""

from __future__ import annotations

import errno
import logging
import math
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
from boto3.exceptions import Boto3Error
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from misis.exceptions import ApiError
from sources.models import Upload
from sources.selectors import UPLOAD_PREFIX, upload_used
from sources.storage import ObjectStorageError, describe, stored_source, video_storage

logger = logging.getLogger(__name__)

# Containers FFmpeg reads that cameras and editors write. The stored name takes the extension
# (players and S3 content types go by it), never anything else of the client's file name.
VIDEO_EXTENSIONS = (
    "mp4", "m4v", "mov", "mkv", "webm", "avi", "ts", "mts", "m2ts", "mpg", "mpeg", "flv",
    "wmv", "asf", "3gp",
)  # fmt: skip
# Room for the multipart boundaries and part headers around the file in the request body.
MULTIPART_OVERHEAD = 64 * 1024
HEAD_BYTES = 512
ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
NOT_A_VIDEO = "not a readable video: no video frame could be decoded from it"
# Pixels FFmpeg's max_pixels check may count beyond the frame itself, for the padding of its
# buffers (+128 columns and +40 rows on a 320x240 MPEG-4 frame, for one).
DECODER_PADDING = 1 << 20


class VideoRejected(ApiError):
    """The upload is not acceptable; ``field`` names the input, the message says why."""

    status_code = 400

    def __init__(self, message: str, *, field: str = "file") -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def body(self) -> dict[str, Any]:
        return {self.field: [self.message]}


class VideoTooLarge(VideoRejected):
    status_code = 413


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


def _extension(filename: str | None) -> str:
    ext = Path(filename or "").suffix.lower().lstrip(".")
    if ext not in VIDEO_EXTENSIONS:
        allowed = ", ".join(f".{e}" for e in VIDEO_EXTENSIONS)
        raise VideoRejected(f"the file name must end in one of {allowed}")
    return ext


def _is_container(head: bytes) -> bool:
    """Whether the first bytes are those of a video container in VIDEO_EXTENSIONS.

    FFmpeg guesses the format from the content: without this, a text playlist (HLS, concat,
    ...) named clip.mp4 would make it open the URLs or local files listed in it.
    """
    return (
        head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot")  # MP4, MOV
        or head.startswith(b"\x1a\x45\xdf\xa3")  # Matroska, WebM
        or (head.startswith(b"RIFF") and head[8:12] == b"AVI ")
        or (head[:1] == b"\x47" and head[188:189] in (b"", b"\x47"))  # MPEG-TS
        or (head[4:5] == b"\x47" and head[196:197] in (b"", b"\x47"))  # M2TS (4-byte prefix)
        or head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3")  # MPEG program stream
        or head.startswith(b"FLV")
        or head.startswith(ASF_GUID)  # WMV, ASF
    )


@contextmanager
def _local_path(file: UploadedFile[bytes], ext: str) -> Iterator[Path]:
    """A path FFmpeg can open holding the upload: Django's temporary file, or a copy of the
    in-memory upload (small files only: FILE_UPLOAD_MAX_MEMORY_SIZE)."""
    temporary = getattr(file, "temporary_file_path", None)
    if temporary is not None:
        yield Path(temporary())
        return
    with tempfile.NamedTemporaryFile(suffix=f".{ext}", dir=settings.FILE_UPLOAD_TEMP_DIR) as tmp:
        for chunk in file.chunks():
            tmp.write(chunk)
        tmp.flush()
        yield Path(tmp.name)


def _too_many_pixels(limit: int, size: str = "") -> VideoRejected:
    frames = f"frames of {size}" if size else "frames"
    return VideoRejected(
        f"{frames} larger than {limit} pixels (width x height, MISIS_MAX_FRAME_PIXELS) are"
        " not accepted"
    )


def _frame_count(container: Any, stream: Any, fps: float) -> int:
    """As OpenCV counts (the runner reads with it): the container's count, else duration x
    rate."""
    if stream.frames:
        return int(stream.frames)
    seconds = (container.duration or 0) / 1_000_000
    if seconds <= 0 and stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    return math.floor(seconds * fps + 0.5)


def _probe(path: Path) -> dict[str, Any]:
    """Frames, size and rate of a video that FFmpeg opens and decodes a frame of, with frames
    of at most MISIS_MAX_FRAME_PIXELS.

    No frame much larger is ever decoded: probing the container opens no decoder
    (codec_whitelist: none; FFmpeg would otherwise decode a few frames to learn their format,
    whatever their size), and the one decoder opened here has max_pixels set, so FFmpeg
    refuses the size the stream's own headers state before it allocates a picture, whatever
    the container claims. Its check counts the padding of its buffers (aligned widths, edges),
    hence the room above the limit; the exact limit is checked on the frame decoded. Only local
    files are opened (protocol_whitelist), whatever a container refers to.
    """
    limit = settings.MISIS_MAX_FRAME_PIXELS
    decoder_limit = 2 * limit + DECODER_PADDING
    options = {"codec_whitelist": "none", "protocol_whitelist": "file"}
    try:
        with av.open(str(path), container_options=options, metadata_errors="replace") as container:
            if not container.streams.video or container.streams.video[0].codec_context is None:
                raise VideoRejected(NOT_A_VIDEO)
            stream = container.streams.video[0]
            stream.codec_context.options = {"max_pixels": str(decoder_limit)}
            frame = next(container.decode(stream), None)
            if frame is None:
                raise VideoRejected(NOT_A_VIDEO)
            width, height = int(frame.width), int(frame.height)
            if width * height > limit:
                raise _too_many_pixels(limit, f"{width}x{height}")
            rate = stream.base_rate or stream.average_rate or stream.guessed_rate
            fps = round(float(rate or 0.0), 3)
            frames = _frame_count(container, stream, fps)
    except av.FFmpegError as exc:
        # The decoder refuses a size over max_pixels with EINVAL (or ENOMEM, from its buffer
        # pool); damaged data is AVERROR_INVALIDDATA. No picture was allocated.
        if exc.errno in (errno.EINVAL, errno.ENOMEM):
            raise _too_many_pixels(limit) from None
        raise VideoRejected(NOT_A_VIDEO) from None
    if frames <= 0:
        raise VideoRejected(NOT_A_VIDEO)
    return {"frames": frames, "width": width, "height": height, "fps": fps}


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
        ext = _extension(file.name)
        limit = settings.MISIS_UPLOAD_MAX_BYTES
        if file.size is None or file.size > limit:
            raise _too_large(limit)
        if file.size == 0:
            raise VideoRejected("the file is empty")
        file.seek(0)
        head = file.read(HEAD_BYTES)
        file.seek(0)
        if not _is_container(head):
            raise VideoRejected(NOT_A_VIDEO)
        with _local_path(file, ext) as path:
            info = _probe(path)
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
