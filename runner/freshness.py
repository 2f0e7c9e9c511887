"""How long a live scenario waits for the camera's next frame rather than send one about to be
replaced.

A camera's frames come every interval I (40 ms at 25 fps). When the detector frees, the newest
frame is on average I/2 old, and that age is part of every prediction's latency. Waiting up to
w for the next frame whenever it is due within w sends a fresh frame in a share w/I of the
turns, lowers the median age by w, and idles this scenario's detector w/2 in those turns: on
average w²/(2I) a turn. Held to a share ``cost`` of a turn of the detector (its round trip T),
w = sqrt(2·I·cost·T), never more than I/2 nor ``MAX_WAIT`` (a wait holds up the loop's stop
check). With I = 40 ms, T = 85 ms and cost 2 %, w is 11.7 ms. A publish that is due and fits
in the wait (its last duration under the time left) is written during it rather than after
the next frame is sent. On a GPU (T below I) the loop already waits for each new frame, and w
is a few milliseconds (2.8 at T = 5 ms).
"""

from __future__ import annotations

import math
import time


class Freshness:
    """The round trip of this loop's detections, and the wait it allows."""

    SMOOTHING = 0.2  # of the moving average of the round trip
    MAX_WAIT = 0.1  # seconds, whatever the stream's interval (a 1-fps camera: I/2 is 0.5 s)

    def __init__(self, cost: float) -> None:
        self.cost = cost
        self.round_trip: float | None = None
        self._sent_at: float | None = None

    def sent(self) -> None:
        self._sent_at = time.monotonic()

    def answered(self) -> None:
        """A result came back for the frame sent last (a live loop keeps one in flight)."""
        if self._sent_at is None:
            return
        took = time.monotonic() - self._sent_at
        self._sent_at = None
        last = self.round_trip
        self.round_trip = took if last is None else last + self.SMOOTHING * (took - last)

    def wait(self, interval: float | None) -> float:
        """Seconds to wait for a frame due to replace the one waiting, given the stream's frame
        interval; 0 when unknown or off."""
        if self.cost <= 0 or interval is None or self.round_trip is None:
            return 0.0
        return min(
            math.sqrt(2 * interval * self.cost * self.round_trip), interval / 2, self.MAX_WAIT
        )
