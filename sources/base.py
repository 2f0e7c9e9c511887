"""The small interface every source scheme implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, ClassVar

# Containers the decoder may read from a file or an HTTP body. Everything else FFmpeg could
# probe is refused: a "video" that is really a playlist (hls), a concat list or an image
# sequence would make the decoder open further files or URLs by itself.
FILE_FORMATS = (
    "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpegts,flv,asf,mpeg,mpegvideo,h264,hevc,m4v,"
    "mjpeg,ivf,nut,yuv4mpegpipe"
)


class SourceError(Exception):
    """The source cannot be opened or read; the message is shown to the user."""


IoOpen = Callable[[str, int, dict[str, Any]], IO[bytes]]


@dataclass
class Target:
    """What the decoder opens, and the only ways it may reach anything while doing so."""

    url: str  # handed to FFmpeg; never a string the user or a device sent unparsed
    options: dict[str, str] = field(default_factory=dict)  # per-open FFmpeg options
    format: str | None = None  # the demuxer, when the scheme fixes it (rtsp)
    io_open: IoOpen | None = None  # every open, nested ones too, when set
    close: Callable[[], None] = lambda: None  # releases what the target holds (a relay)
    refusal: Callable[[], str | None] = lambda: None  # why the I/O layer refused, if it did


class Source(ABC):
    """One scheme's rules: create-time validation, what the decoder opens, its traits."""

    schemes: ClassVar[tuple[str, ...]]
    # True: a camera (newest frame, reconnects); False: a file; None: decided when opened.
    live: ClassVar[bool | None] = False
    # A remote file cut short mid-way is opened again where it stopped.
    reopens_when_cut: ClassVar[bool] = False

    def __init__(self, url: str) -> None:
        self.url = url

    @classmethod
    @abstractmethod
    def validate(cls, url: str) -> None:
        """Raise SourceError (the text is shown to the user) unless ``url`` may be a source.

        Called when a scenario is created; reachability is not checked, a camera may be
        down now and up later.
        """

    @abstractmethod
    def target(self, *, open_timeout: float, read_timeout: float) -> Target:
        """Check the source again (DNS may have changed) and build what the decoder opens."""

    def read_timeout(self, default: float) -> float:
        """How long a read may wait for a frame before the stream counts as stalled."""
        return default
