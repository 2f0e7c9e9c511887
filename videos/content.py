"""What an upload holds, checked before anything is stored: a file name with a video
container's extension, the first bytes of such a container, and a video FFmpeg opens and decodes
a frame of (within MISIS_MAX_FRAME_PIXELS). VideoRejected (400) or VideoTooLarge (413) says why
not; misis/exceptions.py turns them into answers."""

from __future__ import annotations

import errno
import math
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import av
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from misis.exceptions import ApiError

# Containers FFmpeg reads that cameras and editors write. The stored name takes the extension
# (players and S3 content types go by it), never anything else of the client's file name.
VIDEO_EXTENSIONS = (
    "mp4", "m4v", "mov", "mkv", "webm", "avi", "ts", "mts", "m2ts", "mpg", "mpeg", "flv",
    "wmv", "asf", "3gp",
)  # fmt: skip
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


def video_extension_check(*, filename: str | None) -> str:
    """The extension the stored name takes; VideoRejected unless one of VIDEO_EXTENSIONS."""
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


def video_content_check(*, file: UploadedFile[bytes], ext: str) -> dict[str, Any]:
    """Frames, width, height and fps of ``file`` if it starts like a video container and FFmpeg
    decodes a frame of it (``_probe``); VideoRejected otherwise."""
    file.seek(0)
    head = file.read(HEAD_BYTES)
    file.seek(0)
    if not _is_container(head):
        raise VideoRejected(NOT_A_VIDEO)
    with _local_path(file, ext) as path:
        return _probe(path)
