"""Streams per GPU at 5 fps, in one call of a few minutes on a CUDA node.

    .venv/bin/python -m bench.gpu [--device cuda:0] [--runtime auto] [--fps 5] [--max-batch 64]

1. decoding: a 1280x720 H.264 clip (25 fps) decoded on the CPU and with NVDEC (PyAV's
   ``hwaccel`` with the ``cuda`` device), in frames per second; what one GPU can decode bounds
   the cameras it serves (each camera's stream is decoded whole, at its own 25 fps);
2. the detector (``--runtime``, default auto: TensorRT fp16 when installed, else torch fp16)
   called directly at batch 1, 8, 16, 32, 64;
3. N simulated cameras each handing a frame every 1/fps s (staggered) to one dynamic batcher
   that takes what is waiting, up to ``--max-batch``, as the inference worker does; N grows
   until the detector no longer keeps up (fewer than 98% of the frames done, or p99 latency
   above one frame interval). Prints the largest N that kept up, with its latency p50 / p99
   (frame handed over -> boxes back).

Streams per GPU = the smaller of the detector's N and NVDEC's frames per second / 25.
Without CUDA it stops at once with a message saying so (exit status 2). Needs nothing but the
inference requirements (no database, no Redis); a TensorRT engine is built once (minutes) and
kept in the model cache.
"""

from __future__ import annotations

import argparse
import queue
import statistics
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import pct

SOURCE_FPS = 25
DETECT_BATCHES = (1, 8, 16, 32, 64)


def require_cuda(device: str) -> Any:
    import torch

    if not device.startswith("cuda") or not torch.cuda.is_available():
        print(
            f"bench.gpu needs a CUDA GPU: --device {device}, torch.cuda.is_available() is "
            f"{torch.cuda.is_available()}. Run it on a node with an NVIDIA GPU and its driver; "
            "on a CPU node bench/detection.py measures the CPU runtimes.",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return torch


def write_h264(path: Path, frames: list[np.ndarray], fps: int = SOURCE_FPS) -> Path:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def decode_fps(path: Path, nvdec: bool) -> tuple[float, str]:
    """Frames per second decoding ``path`` to BGR arrays, and which decoder did it."""
    import av
    from av.codec.hwaccel import HWAccel

    hwaccel = HWAccel("cuda", allow_software_fallback=False) if nvdec else None
    with av.open(str(path), hwaccel=hwaccel) as container:
        stream = container.streams.video[0]
        t0 = time.perf_counter()
        count = 0
        for frame in container.decode(stream):
            frame.to_ndarray(format="bgr24")
            count += 1
        elapsed = time.perf_counter() - t0
        used = "NVDEC" if stream.codec_context.is_hwaccel else "CPU"
    return count / elapsed, used


def detect_fps(model: Any, frames: list[np.ndarray], batch: int, seconds: float) -> float:
    from inference.backends.base import DetectOptions

    chunk = [frames[i % len(frames)] for i in range(batch)]
    model.predict(chunk, [DetectOptions()] * batch)
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or done == 0:
        model.predict(chunk, [DetectOptions()] * batch)
        done += batch
    return done / (time.perf_counter() - t0)


def simulate(
    model: Any, frames: list[np.ndarray], streams: int, fps: float, max_batch: int, seconds: float
) -> tuple[float, list[float]]:
    """``streams`` cameras at ``fps`` into one batcher for ``seconds``: the share of frames
    done, and each frame's latency (handed over -> boxes back)."""
    from inference.backends.base import DetectOptions

    pending: queue.SimpleQueue[float] = queue.SimpleQueue()
    stop = threading.Event()
    interval = 1.0 / fps
    start = time.perf_counter() + 0.1
    sent = 0

    def cameras() -> None:
        nonlocal sent
        # Frame k of camera c is due at start + k * interval + c * interval / streams.
        k = 0
        while not stop.is_set():
            for c in range(streams):
                due = start + k * interval + c * interval / streams
                if due > start + seconds:
                    return
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                pending.put(due)
                sent += 1
            k += 1

    producer = threading.Thread(target=cameras, daemon=True)
    producer.start()
    latencies: list[float] = []
    deadline = start + seconds + 2 * interval
    while time.perf_counter() < deadline and (producer.is_alive() or not pending.empty()):
        try:
            batch = [pending.get(timeout=0.01)]
        except queue.Empty:
            continue
        while len(batch) < max_batch:
            try:
                batch.append(pending.get_nowait())
            except queue.Empty:
                break
        images = [frames[i % len(frames)] for i in range(len(batch))]
        model.predict(images, [DetectOptions()] * len(batch))
        done_at = time.perf_counter()
        latencies.extend(done_at - due for due in batch)
    stop.set()
    producer.join()
    return (len(latencies) / sent if sent else 0.0), latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--runtime", default="auto")
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=8.0, help="per simulated load")
    args = parser.parse_args()
    torch = require_cuda(args.device)

    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "misis.settings.test")
    import django

    django.setup()
    from django.conf import settings

    from inference.backends import build_yolo, choose_runtime
    from inference.preprocess import letterbox
    from runner.samples import write_people_video

    runtime = choose_runtime(args.runtime, args.device)
    print(
        f"# gpu bench: {torch.cuda.get_device_name(torch.device(args.device))}, torch "
        f"{torch.__version__}, runtime {runtime} fp16, cameras at {args.fps:g} fps"
    )
    work = Path(tempfile.mkdtemp(prefix="misis-gpu-"))
    import cv2

    clip = write_people_video(work / "people.mp4", frames=50, size=(1280, 720))
    cap = cv2.VideoCapture(str(clip))
    source = []
    while (read := cap.read())[0]:
        source.append(read[1])
    h264 = write_h264(work / "people-720p.mp4", source * 6)  # 300 frames, 12 s
    cpu_fps, _ = decode_fps(h264, nvdec=False)
    try:
        gpu_fps, used = decode_fps(h264, nvdec=True)
    except Exception as exc:  # PyAV's FFmpeg built without NVDEC, or no decoder for it
        gpu_fps, used = 0.0, f"unavailable ({type(exc).__name__}: {exc})"
    print(f"decode 1280x720 H.264: CPU {cpu_fps:7.1f} frames/s; NVDEC {gpu_fps:7.1f} ({used})")
    decode_streams = int(max(cpu_fps, gpu_fps) // SOURCE_FPS)

    # What the runner sends: frames letterboxed to the model's size (640x384 for 720p).
    frames = [letterbox(img, 640)[0] for img in source]
    t0 = time.perf_counter()
    model = build_yolo(
        runtime,
        model=None,
        device=args.device,
        half=True,
        threads=None,
        cache=Path(settings.MISIS_MODEL_CACHE),
    )
    print(f"detector {runtime} loaded in {time.perf_counter() - t0:.1f}s")
    best = 0.0
    for batch in (b for b in DETECT_BATCHES if b <= args.max_batch):
        fps = detect_fps(model, frames, batch, 3.0)
        best = max(best, fps)
        print(f"direct {runtime}, batch {batch:2d}: {fps:8.1f} frames/s")

    # From half of what the best batch promises, up by 10% steps until it no longer keeps up.
    streams = max(1, int(best / args.fps * 0.5))
    kept: tuple[int, list[float]] | None = None
    for _ in range(60):  # bounded: the whole run stays within minutes
        share, lat = simulate(model, frames, streams, args.fps, args.max_batch, args.seconds)
        p50, p99 = statistics.median(lat), pct(lat, 99)
        ok = share >= 0.98 and p99 <= 1.0 / args.fps
        print(
            f"{streams:5d} streams: {share * 100:5.1f}% frames done, latency p50 "
            f"{p50 * 1000:6.1f} ms, p99 {p99 * 1000:6.1f} ms {'ok' if ok else 'FALLS BEHIND'}"
        )
        if not ok:
            break
        kept = (streams, lat)
        streams = max(streams + 1, int(streams * 1.1))
    if kept is None:
        print(f"not even {streams} streams kept up at {args.fps:g} fps")
        return
    n, lat = kept
    print(
        f"streams per GPU at {args.fps:g} fps: {min(n, decode_streams)} "
        f"(detector {n}, latency p50 {statistics.median(lat) * 1000:.1f} ms, "
        f"p99 {pct(lat, 99) * 1000:.1f} ms; decoding {decode_streams} streams of "
        f"{SOURCE_FPS} fps)"
    )


if __name__ == "__main__":
    main()
