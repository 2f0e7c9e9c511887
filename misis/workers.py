"""Worker presence in Redis, for /health/ and the admin.

Every Celery worker writes one key per queue it consumes, refreshed every few seconds with a
short TTL, so a dead worker disappears by itself. The inference worker also states its
detector. Presence is for display only: it never decides who runs a scenario.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from misis.redis_client import get_redis

logger = logging.getLogger(__name__)

PREFIX = "misis:worker:"
TTL = 15
REFRESH = 5.0


def _key(queue: str, hostname: str) -> str:
    return f"{PREFIX}{queue}:{hostname}"


class Presence:
    def __init__(self, hostname: str, queues: list[str]) -> None:
        self.hostname = hostname
        self.queues = queues
        self.info: dict[str, Any] = {}
        self.stop_event = threading.Event()

    def beat(self) -> None:
        pipe = get_redis().pipeline(transaction=False)
        for queue in self.queues:
            pipe.set(_key(queue, self.hostname), json.dumps(self.info), ex=TTL)
        pipe.execute()

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.beat()
            except Exception:
                logger.warning("worker presence: Redis unreachable", exc_info=True)
            self.stop_event.wait(REFRESH)

    def clear(self) -> None:
        self.stop_event.set()
        try:
            get_redis().delete(*[_key(q, self.hostname) for q in self.queues])
        except Exception:
            logger.warning("worker presence: could not clear", exc_info=True)


def live_workers() -> dict[str, dict[str, dict[str, Any]]]:
    """{queue: {hostname: info}} for the workers seen in the last few seconds."""
    r = get_redis()
    out: dict[str, dict[str, dict[str, Any]]] = {}
    keys = list(r.scan_iter(match=PREFIX + "*", count=500))
    values = r.mget(keys) if keys else []
    for key, value in zip(keys, values, strict=True):
        if value is None:
            continue
        queue, hostname = key.decode()[len(PREFIX) :].split(":", 1)
        out.setdefault(queue, {})[hostname] = json.loads(value)
    return out
