"""The inference worker's loop: gather frames from all scenarios into batches, detect, reply.

A batch closes at ``MISIS_MAX_BATCH`` frames or ``MISIS_MAX_WAIT_MS`` after its first frame,
whichever comes first (the shape of Triton's dynamic batcher), and also as soon as no more can
come: when it holds, of every runner loop seen lately, as many frames as that loop keeps in
flight (its ``window``: 1 for a live source, so a lone camera never waits for company;
``MISIS_MAX_IN_FLIGHT`` for a file, whose next frames follow within a millisecond or two of
its answers, so a lone file fills its batches). Requests whose runner has given up on them
(past their expiry) are dropped unseen.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter

from django.conf import settings

from inference.backends.base import Backend, Box
from inference.transport import REPLY_TTL, REQUESTS_KEY, Request, decode_request
from misis import metrics
from misis.redis_client import as_bytes, get_redis

logger = logging.getLogger(__name__)

# A runner loop that sent nothing for this long is no longer waited for.
CLIENT_MEMORY = 2.0


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
        # runner loop -> (when its last frame came, how many frames it keeps in flight)
        self.clients: dict[str, tuple[float, int]] = {}

    def _forget_quiet_clients(self, now: float) -> None:
        for client, (seen, _) in list(self.clients.items()):
            if now - seen > CLIENT_MEMORY:
                del self.clients[client]

    def _complete(self, batch: list[Request]) -> bool:
        """Whether no more frames can come: each loop seen lately (or in the batch) has as
        many frames in it as it keeps in flight."""
        counts = Counter(r.client for r in batch)
        windows = {c: window for c, (_, window) in self.clients.items()}
        windows.update((r.client, r.window) for r in batch)
        return all(counts[c] >= window for c, window in windows.items())

    def gather(self) -> list[Request]:
        first = self.redis.brpop([REQUESTS_KEY], timeout=1)
        if first is None:
            return []
        batch = [decode_request(as_bytes(first[1]))]
        now = time.monotonic()
        deadline = now + self.max_wait
        self._forget_quiet_clients(now)
        while len(batch) < self.max_batch:
            more = self.redis.rpop(REQUESTS_KEY, self.max_batch - len(batch))
            if isinstance(more, list) and more:  # with a count: a list, or None when empty
                batch.extend(decode_request(as_bytes(p)) for p in more)
                continue
            if self._complete(batch):
                break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            # Poll rather than BRPOP: Redis checks blocking timeouts only every 1/hz seconds
            # (100 ms by default), far coarser than a batching window of a few milliseconds.
            time.sleep(min(left, 0.001))
        return batch

    def step(self) -> int:
        gathered = self.gather()
        if not gathered:
            return 0
        now = time.time()
        seen = time.monotonic()
        for req in gathered:
            self.clients[req.client] = (seen, req.window)
        requests = [r for r in gathered if r.expires_at >= now]
        if not requests:
            return 0
        started = time.perf_counter()
        requests, results = self._predict(requests)
        elapsed_ms = (time.perf_counter() - started) * 1000
        pipe = self.redis.pipeline(transaction=False)
        for req, boxes in zip(requests, results, strict=True):
            body = json.dumps(
                {
                    "boxes": [b.as_dict() for b in boxes],
                    "inference_ms": round(elapsed_ms, 2),
                }
            )
            pipe.rpush(req.reply_key, body)
            pipe.expire(req.reply_key, REPLY_TTL)
        metrics.add(  # in the answers' round trip
            pipe,
            {"inference_frames": len(requests), "inference_batches": 1},
            {"inference_latency_seconds": elapsed_ms / 1000, "inference_batch_size": len(requests)},
        )
        pipe.execute()
        self.batches += 1
        self.frames += len(requests)
        return len(requests)

    def _predict(self, requests: list[Request]) -> tuple[list[Request], list[list[Box]]]:
        """The batch's detections; when the batch fails (one frame the runtime refuses, e.g. a
        size outside a TensorRT profile), each frame alone, so one scenario's bad frame costs
        the others nothing. A frame that fails alone gets no answer (its runner sends it again
        after MISIS_INFERENCE_TIMEOUT) and is logged."""
        try:
            return requests, self.backend.predict(
                [r.image for r in requests], [r.options for r in requests]
            )
        except Exception:
            if len(requests) == 1:
                raise
            logger.warning("inference batch of %d failed; each frame alone", len(requests))
        answered, results = [], []
        for req in requests:
            try:
                results.append(self.backend.predict([req.image], [req.options])[0])
            except Exception:
                logger.exception("inference of a frame from runner loop %s failed", req.client)
                continue
            answered.append(req)
        return answered, results

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
