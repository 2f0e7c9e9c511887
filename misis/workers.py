"""Worker presence in Redis, for /health/ and the admin.

Every Celery worker writes one key per queue it consumes, refreshed every few seconds with a
short TTL, so a dead worker disappears by itself. The inference worker also states its
detector. Presence is for display only: it never decides who runs a scenario.

Each queue also has a registry, a sorted set of hostnames scored by when their key expires:
/health/ (public, polled by load balancers) reads the registries of the known queues instead of
scanning the keyspace, so its cost follows the number of workers, not of keys in Redis.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from misis import keys
from misis.redis_client import get_redis

logger = logging.getLogger(__name__)

PREFIX = keys.WORKER
REGISTRY = keys.WORKERS
QUEUES = ("runner", "inference", "orchestrator")
TTL = 15
REFRESH = 5.0
# Workers listed per queue at most: bounds /health/ whatever is in the registry.
MAX_LISTED = 1000


def _key(queue: str, hostname: str) -> str:
    return f"{PREFIX}{queue}:{hostname}"


def _registry(queue: str) -> str:
    return f"{REGISTRY}{queue}"


class Presence:
    """``queues``: what the worker started on; ``consuming``: what it consumes now (a queue
    drained with ``celery control cancel_consumer`` is no longer listed until
    ``add_consumer``)."""

    def __init__(
        self,
        hostname: str,
        queues: list[str],
        consuming: Callable[[], list[str]] | None = None,
    ) -> None:
        self.hostname = hostname
        self.queues = queues
        self.consuming = consuming or (lambda: self.queues)
        self.info: dict[str, Any] = {}
        self.stop_event = threading.Event()

    def beat(self) -> None:
        expires = time.time() + TTL
        now = set(self.consuming())
        pipe = get_redis().pipeline(transaction=False)
        for queue in self.queues:
            if queue not in now:  # drained
                pipe.delete(_key(queue, self.hostname))
                pipe.zrem(_registry(queue), self.hostname)
                continue
            pipe.set(_key(queue, self.hostname), json.dumps(self.info), ex=TTL)
            pipe.zadd(_registry(queue), {self.hostname: expires})
            pipe.expire(_registry(queue), TTL)
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
            pipe = get_redis().pipeline(transaction=False)
            pipe.delete(*[_key(q, self.hostname) for q in self.queues])
            for queue in self.queues:
                pipe.zrem(_registry(queue), self.hostname)
            pipe.execute()
        except Exception:
            logger.warning("worker presence: could not clear", exc_info=True)


def live_workers(queues: tuple[str, ...] = QUEUES) -> dict[str, dict[str, dict[str, Any]]]:
    """{queue: {hostname: info}} for the workers seen in the last few seconds.

    A bounded number of Redis commands (two per queue, then one MGET), each on the registries
    only: never a scan of the keyspace.
    """
    r = get_redis()
    now = time.time()
    pipe = r.pipeline(transaction=False)
    for queue in queues:
        pipe.zremrangebyscore(_registry(queue), "-inf", now)
        pipe.zrangebyscore(_registry(queue), now, "+inf", start=0, num=MAX_LISTED)
    listed = pipe.execute()[1::2]
    pairs = [(q, h.decode()) for q, hosts in zip(queues, listed, strict=True) for h in hosts]
    values = r.mget([_key(q, h) for q, h in pairs]) if pairs else []
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for (queue, hostname), value in zip(pairs, values, strict=True):
        if value is None:
            continue
        out.setdefault(queue, {})[hostname] = json.loads(value)
    return out
