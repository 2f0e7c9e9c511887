"""Frame transport options, measured side by side: the numbers behind inference/transport.py.

    .venv/bin/python -m bench.transport [--frames 200]

Each option carries a 640x480 BGR frame from a "runner" to an echo "worker" thread over the
real Redis and the answer back, one frame in flight, and reports the round trip (p50) and the
bytes on the wire. The worker decodes the frame to a numpy array, as a detector would need.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import pickle
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import redis

REQ, REPLY = "misis:bench:req", "misis:bench:reply"


def raw_enc(img: np.ndarray) -> bytes:
    header = json.dumps({"shape": img.shape}).encode()
    return len(header).to_bytes(4, "big") + header + img.tobytes()


def raw_dec(b: bytes) -> np.ndarray:
    n = int.from_bytes(b[:4], "big")
    shape = json.loads(b[4 : 4 + n])["shape"]
    return np.frombuffer(b, np.uint8, offset=4 + n).reshape(shape)


def jpeg_enc(img: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def jpeg_dec(b: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG"
    return image


def b64json_enc(img: np.ndarray) -> bytes:
    # What a Celery task with the JSON serializer would have to carry.
    return json.dumps(
        {"shape": img.shape, "data": base64.b64encode(img.tobytes()).decode()}
    ).encode()


def b64json_dec(b: bytes) -> np.ndarray:
    body = json.loads(b)
    return np.frombuffer(base64.b64decode(body["data"]), np.uint8).reshape(body["shape"])


def pickle_enc(img: np.ndarray) -> bytes:
    return pickle.dumps(img, protocol=5)


def pickle_dec(b: bytes) -> np.ndarray:
    frame: np.ndarray = pickle.loads(b)  # our own bytes, for the measurement only
    return frame


OPTIONS: dict[str, tuple[Callable[[np.ndarray], bytes], Callable[[bytes], np.ndarray]]] = {
    "raw bytes + JSON header (chosen)": (raw_enc, raw_dec),
    "pickle protocol 5": (pickle_enc, pickle_dec),
    "JPEG q90": (jpeg_enc, jpeg_dec),
    "base64 in JSON (Celery JSON task)": (b64json_enc, b64json_dec),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=200)
    args = parser.parse_args()
    r = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/13"))
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8), (9, 9), 3)
    print(f"# transport bench: {args.frames} round trips of a 640x480 frame, one in flight")
    for name, (enc, dec) in OPTIONS.items():
        stop = threading.Event()

        def worker(dec: Callable[[bytes], Any] = dec, stop: threading.Event = stop) -> None:
            w = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/13"))
            while not stop.is_set():
                got = w.brpop([REQ], timeout=1)
                if got:
                    raw = got[1]
                    frame = dec(raw if isinstance(raw, bytes) else raw.encode())
                    w.lpush(REPLY, json.dumps({"mean": float(frame[0, 0, 0])}))

        t = threading.Thread(target=worker, daemon=True)
        t.start()
        times, size = [], 0
        for _ in range(args.frames):
            t0 = time.perf_counter()
            payload = enc(img)
            size = len(payload)
            r.lpush(REQ, payload)
            r.blpop([REPLY], timeout=10)
            times.append(time.perf_counter() - t0)
        stop.set()
        t.join()
        print(
            f"{name:36s} p50 {statistics.median(times) * 1000:6.2f} ms   "
            f"{size / 1024:7.0f} KiB on the wire"
        )


if __name__ == "__main__":
    main()
