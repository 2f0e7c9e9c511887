"""Frames to the inference workers and detections back, over Redis lists.

A request is one Redis value: a 4-byte header length, a JSON header and the raw frame bytes
(no image re-encode). Runners push requests on one shared list; each inference worker pops
as many as it can batch; each answer goes to the request's own reply list.
"""

from __future__ import annotations

import json
import struct
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from inference.backends.base import DetectOptions
from misis import keys

REQUESTS_KEY = keys.INFER_REQUESTS
REPLY_PREFIX = keys.INFER_REPLY
REPLY_TTL = 60
_LEN = struct.Struct(">I")


@dataclass
class Request:
    id: str
    image: np.ndarray
    options: DetectOptions
    expires_at: float
    client: str = ""  # which runner loop sent it; the batcher counts them
    window: int = 1  # frames that loop keeps in flight at most (MISIS_MAX_IN_FLIGHT; live: 1)

    @property
    def reply_key(self) -> str:
        return REPLY_PREFIX + self.id


def new_request(
    image: np.ndarray, options: DetectOptions, ttl: float, client: str = "", window: int = 1
) -> Request:
    return Request(
        id=uuid.uuid4().hex,
        image=image,
        options=options,
        expires_at=time.time() + ttl,
        client=client,
        window=window,
    )


def encode_request(req: Request) -> bytes:
    image = np.ascontiguousarray(req.image)
    header = json.dumps(
        {
            "id": req.id,
            "shape": list(image.shape),
            "dtype": str(image.dtype),
            "confidence": req.options.confidence,
            "classes": sorted(req.options.classes) if req.options.classes is not None else None,
            "imgsz": req.options.imgsz,
            "expires_at": req.expires_at,
            "client": req.client,
            "window": req.window,
        }
    ).encode()
    return b"".join((_LEN.pack(len(header)), header, image.data.cast("B")))


def decode_request(payload: bytes) -> Request:
    (n,) = _LEN.unpack_from(payload)
    header: dict[str, Any] = json.loads(payload[4 : 4 + n])
    image = np.frombuffer(payload, dtype=header["dtype"], offset=4 + n).reshape(header["shape"])
    classes = header["classes"]
    return Request(
        id=header["id"],
        image=image,
        options=DetectOptions(
            confidence=header["confidence"],
            classes=frozenset(classes) if classes is not None else None,
            imgsz=header["imgsz"],
        ),
        expires_at=header["expires_at"],
        client=header["client"],
        window=int(header.get("window", 1)),
    )
