"""What a runner uses to get frames detected: submit, then collect results in order."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings

from inference.backends.base import DetectOptions
from inference.transport import REQUESTS_KEY, Request, encode_request, new_request
from misis.redis_client import as_bytes, get_redis

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Detection:
    boxes: list[dict[str, Any]]
    inference_ms: float


class InferenceClient:
    """Keeps at most ``max_in_flight`` requests outstanding; results come back in order."""

    def __init__(self, max_in_flight: int | None = None, timeout: float | None = None) -> None:
        self.max_in_flight = max_in_flight or settings.MISIS_MAX_IN_FLIGHT
        self.timeout = timeout or settings.MISIS_INFERENCE_TIMEOUT
        self.in_flight: deque[tuple[Request, Any]] = deque()
        self.id = uuid.uuid4().hex
        self.redis = get_redis()

    @property
    def full(self) -> bool:
        return len(self.in_flight) >= self.max_in_flight

    def submit(self, image: np.ndarray, options: DetectOptions, tag: Any = None) -> None:
        req = new_request(image, options, self.timeout, self.id, window=self.max_in_flight)
        self.redis.lpush(REQUESTS_KEY, encode_request(req))
        self.in_flight.append((req, tag))

    def collect(self, wait: float) -> tuple[Any, Detection] | None:
        """The oldest request's (tag, result), or None if it is not ready within ``wait``.

        A request the workers lost (a worker died holding it) is sent again after the timeout,
        so no frame is skipped.
        """
        if not self.in_flight:
            return None
        req, tag = self.in_flight[0]
        if wait <= 0:
            raw = self.redis.lpop(req.reply_key)
            # Without a count LPOP answers one element (redis-py types it a list, too).
            assert not isinstance(raw, list)
        else:
            popped = self.redis.blpop([req.reply_key], timeout=max(wait, 0.01))
            raw = None if popped is None else popped[1]
        if raw is None:
            if req.expires_at < time.time():
                logger.warning("inference request %s timed out; sending it again", req.id)
                self.in_flight.popleft()
                retry = new_request(
                    req.image, req.options, self.timeout, self.id, window=self.max_in_flight
                )
                self.redis.lpush(REQUESTS_KEY, encode_request(retry))
                self.in_flight.appendleft((retry, tag))
            return None
        self.in_flight.popleft()
        body = json.loads(as_bytes(raw))
        return tag, Detection(boxes=body["boxes"], inference_ms=body["inference_ms"])
