"""The inference worker's loop: gather frames from all scenarios into batches, detect, reply.

A batch closes at ``MISIS_MAX_BATCH`` frames or ``MISIS_MAX_WAIT_MS`` after its first frame,
whichever comes first (the shape of Triton's dynamic batcher). Requests whose runner has
given up on them (past their expiry) are dropped unseen.
"""

from __future__ import annotations

import json
import logging
import threading
import time

from django.conf import settings

from inference.backends.base import Backend
from inference.transport import REPLY_TTL, REQUESTS_KEY, Request, decode_request
from misis.redis_client import get_redis

logger = logging.getLogger(__name__)


class Batcher:
    def __init__(
        self, backend: Backend, max_batch: int | None = None, max_wait_ms: float | None = None
    ):
        self.backend = backend
        self.max_batch = max_batch or settings.MISIS_MAX_BATCH
        self.max_wait = (settings.MISIS_MAX_WAIT_MS if max_wait_ms is None else max_wait_ms) / 1000
        self.stop_event = threading.Event()
        self.redis = get_redis()
        self.batches = 0
        self.frames = 0

    def gather(self) -> list[bytes]:
        first = self.redis.brpop([REQUESTS_KEY], timeout=1)
        if first is None:
            return []
        batch = [first[1]]
        deadline = time.monotonic() + self.max_wait
        while len(batch) < self.max_batch:
            more = self.redis.rpop(REQUESTS_KEY, self.max_batch - len(batch))
            if more:
                batch.extend(more)
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                break
            # BRPOP takes fractional timeouts, but 0 means forever: keep a floor.
            got = self.redis.brpop([REQUESTS_KEY], timeout=max(left, 0.001))
            if got is None:
                break
            batch.append(got[1])
        return batch

    def step(self) -> int:
        payloads = self.gather()
        if not payloads:
            return 0
        now = time.time()
        requests: list[Request] = []
        for payload in payloads:
            req = decode_request(payload)
            if req.expires_at >= now:
                requests.append(req)
        if not requests:
            return 0
        started = time.perf_counter()
        results = self.backend.predict([r.image for r in requests], [r.options for r in requests])
        elapsed_ms = (time.perf_counter() - started) * 1000
        pipe = self.redis.pipeline(transaction=False)
        for req, boxes in zip(requests, results, strict=True):
            body = json.dumps(
                {
                    "boxes": [b.as_dict() for b in boxes],
                    "inference_ms": round(elapsed_ms, 2),
                    "batch": len(requests),
                }
            )
            pipe.rpush(req.reply_key, body)
            pipe.expire(req.reply_key, REPLY_TTL)
        pipe.execute()
        self.batches += 1
        self.frames += len(requests)
        return len(requests)

    def run(self) -> None:
        logger.info(
            "inference batcher up: backend %s, model %s, max batch %d, max wait %.1f ms",
            self.backend.name,
            self.backend.model,
            self.max_batch,
            self.max_wait * 1000,
        )
        while not self.stop_event.is_set():
            try:
                self.step()
            except Exception:
                logger.exception("inference batch failed")
                time.sleep(0.5)
