"""The newest analysed frame of each scenario, with its boxes drawn, for the live preview.

The runner offers every analysed frame; while someone watches the preview, at most
``MAX_RATE`` a second are JPEG-encoded and kept in Redis (a few milliseconds each), with a
short TTL so a stopped scenario's preview goes stale on its own.

Nobody watching, nothing encoded: each preview request (the frame, the page) marks the
scenario watched for ``WATCH_TTL`` seconds (``mark_watched``, called by the views once they
have checked who may see it), and the runner looks for that mark at most every
``WATCH_CHECK_INTERVAL`` seconds, not per frame (a runner process reads the marks of all its
scenarios in one round trip, runner/stop_flags.py). The first request after a quiet spell may
find an old frame or none; fresh ones follow within about a second.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np

from misis import keys
from misis.redis_client import as_bytes, get_redis

logger = logging.getLogger(__name__)

MAX_RATE = 4.0  # frames a second per scenario
TTL = 60
WATCH_TTL = 10  # seconds a preview request keeps the scenario watched
WATCH_CHECK_INTERVAL = 1.0  # seconds between the runner's looks at the mark
COLOURS = [(0, 200, 0), (0, 0, 230), (230, 120, 0), (0, 200, 230), (200, 0, 200)]


# The frame is kept only while the scenario has a runner's lease: deleting a scenario removes
# its lease, so a runner that has not noticed the delete yet cannot bring its preview back.
_SET_WHILE_LEASED = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
end
return 0
"""


def frame_key(scenario_id: object) -> str:
    return keys.preview(scenario_id)


def annotate(image: np.ndarray, boxes: list[dict[str, Any]]) -> np.ndarray:
    out = image.copy()
    for box in boxes:
        colour = COLOURS[int(box.get("class_id", 0)) % len(COLOURS)]
        p1 = (round(box["x1"]), round(box["y1"]))
        p2 = (round(box["x2"]), round(box["y2"]))
        cv2.rectangle(out, p1, p2, colour, 2)
        track = f"#{box['track_id']} " if box.get("track_id") is not None else ""
        caption = f"{track}{box['label']} {box['confidence']:.2f}"
        cv2.putText(
            out, caption, (p1[0] + 2, max(p1[1] - 4, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1
        )
    return out


def mark_watched(scenario_id: object) -> None:
    """Someone allowed to see the scenario asked for its preview: encode frames for a while."""
    get_redis().set(keys.preview_watched(scenario_id), b"1", ex=WATCH_TTL)


def watch_marks(scenario_ids: Sequence[object]) -> list[bool]:
    """Whether each scenario's preview is watched, in one round trip."""
    if not scenario_ids:
        return []
    raws = get_redis().mget([keys.preview_watched(s) for s in scenario_ids])
    return [raw is not None for raw in raws]


class PreviewWriter:
    """``watched``: how the writer learns whether anyone watches (a runner process's poller
    reads every scenario's mark at once); by default it reads its own mark from Redis at most
    every ``WATCH_CHECK_INTERVAL`` seconds."""

    def __init__(self, scenario_id: str, watched: Callable[[], bool] | None = None) -> None:
        self.scenario_id = scenario_id
        self.last = 0.0
        self.encoded = 0  # frames encoded and stored
        self._watched = False
        self._next_watch_check = 0.0
        self._read_watched = watched

    def watched(self) -> bool:
        """Whether anyone watches: from ``watched``, or the mark read from Redis at most every
        ``WATCH_CHECK_INTERVAL`` seconds."""
        if self._read_watched is not None:
            return self._read_watched()
        now = time.monotonic()
        if now >= self._next_watch_check:
            self._next_watch_check = now + WATCH_CHECK_INTERVAL
            try:
                (self._watched,) = watch_marks([self.scenario_id])
            except Exception:
                logger.warning(
                    "scenario %s: preview watch mark not read", self.scenario_id, exc_info=True
                )
                self._watched = False
        return self._watched

    def offer(
        self,
        image: np.ndarray,
        boxes: list[dict[str, Any]],
        overlay: Callable[[np.ndarray], None] | None = None,
    ) -> None:
        """Keep this frame if the last one is old enough; ``overlay`` draws more on it
        (zones, lines and counts, from the analytics above this layer)."""
        now = time.monotonic()
        if now - self.last < 1.0 / MAX_RATE or not self.watched():
            return
        self.last = now
        try:
            drawn = annotate(image, boxes)
            if overlay is not None:
                overlay(drawn)
            ok, jpeg = cv2.imencode(".jpg", drawn, [cv2.IMWRITE_JPEG_QUALITY, 80])
            if ok:
                stored = get_redis().eval(
                    _SET_WHILE_LEASED,
                    2,
                    keys.lease(self.scenario_id),
                    frame_key(self.scenario_id),
                    jpeg.tobytes(),
                    TTL,
                )
                self.encoded += bool(stored)
        except Exception:
            logger.warning("scenario %s: preview frame not stored", self.scenario_id, exc_info=True)


def latest_frame(scenario_id: object) -> bytes | None:
    """The newest annotated JPEG of a scenario, or None."""
    raw = get_redis().get(frame_key(scenario_id))
    return as_bytes(raw) if raw is not None else None
