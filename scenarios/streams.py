"""What the API shows of a live source; the runner reports it with each heartbeat."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class StreamStatus:
    """What the API shows of a live source: connected or reconnecting, and since when."""

    state: str  # "connected" | "reconnecting"
    last_frame_at: datetime | None
    error: str | None
