"""One thread per runner process reads the stop flags of every scenario the process runs, and
whether each one's preview is watched (scenarios/preview.py), instead of each loop asking.

A stop is flagged in Redis (scenarios/control.py). Each loop used to GET its own key every
50 ms: 20 Redis round trips a second per scenario, 5,000 a second for a process with 250. Here
one thread reads the keys of all the (scenario, epoch) pairs the process runs in one MGET every
``POLL_INTERVAL`` and sets the event of each that is flagged; a loop only checks its event,
between results or every ``runner.loop.STOP_CHECK_INTERVAL``: a stop is noticed within half a
second. (At 0.05 s the MGET of a process with 2 waiting scenarios cost 8 ms of CPU a second,
on a node whose detector shares the cores.) The preview marks come in a second MGET of the same
poll: each loop used to read its own mark once a second, 250 round trips a second for a process
with 250 scenarios.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from scenarios.control import stops_requested
from scenarios.preview import watch_marks

logger = logging.getLogger(__name__)

POLL_INTERVAL = 0.25  # how soon a stop's flag is read, at most (plus one Redis round trip)
RETRY_AFTER = 1.0  # Redis unreachable: the publishes still see a stop in the database


class StopFlags:
    """The (scenario, epoch) pairs a process runs, each with the event its loop watches."""

    def __init__(self, interval: float = POLL_INTERVAL) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._watched: dict[threading.Event, tuple[str, int]] = {}
        self._previewed: frozenset[str] = frozenset()  # as of the last poll
        self._thread: threading.Thread | None = None

    @contextmanager
    def watching(self, scenario_id: str, epoch: int) -> Iterator[threading.Event]:
        """An event set once the stop of (scenario, epoch) is flagged, while the block runs."""
        flag = threading.Event()
        with self._lock:
            self._watched[flag] = (scenario_id, epoch)
            # Started on first use, and again in a forked child (whose parent's thread is gone).
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="misis-stop-flags", daemon=True
                )
                self._thread.start()
            self._changed.notify()
        try:
            yield flag
        finally:
            with self._lock:
                del self._watched[flag]

    def previewed(self, scenario_id: str) -> bool:
        """Whether the scenario's preview was watched at the last poll."""
        return scenario_id in self._previewed

    def poll(self) -> None:
        """Read every watched flag once, in one round trip, and the preview marks in another."""
        with self._lock:
            watched = list(self._watched.items())
        pairs = [pair for _, pair in watched]
        flagged = stops_requested(pairs)
        for (flag, _), stop in zip(watched, flagged, strict=True):
            if stop:
                flag.set()
        ids = [scenario_id for scenario_id, _ in pairs]
        marks = watch_marks(ids)
        self._previewed = frozenset(s for s, mark in zip(ids, marks, strict=True) if mark)

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._watched:
                    self._changed.wait()
                count = len(self._watched)
            try:
                self.poll()
            except Exception:
                logger.warning(
                    "stop flags of %d scenarios unreadable; retrying in %g s",
                    count,
                    RETRY_AFTER,
                    exc_info=True,
                )
                time.sleep(RETRY_AFTER)
            time.sleep(self.interval)


STOP_FLAGS = StopFlags()  # the process's one poller
