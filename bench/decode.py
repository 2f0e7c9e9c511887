"""Decode cost: OpenCV's FFmpeg backend against PyAV (the runner's decoder) on the same file.

    python -m bench.decode [--frames 500] [--rounds 5] [--size 640x480]

Writes one H.264 file (PyAV's libx264), then, in alternating rounds so that the VM's drift hits
both alike, decodes every frame to a BGR array with ``cv2.VideoCapture.read`` and with
``sources.decoder.Decoder`` (the runner's path: per-open options, the local file target).
Prints frames/s per round and the range over rounds, and the ratio PyAV / OpenCV.

    python -m bench.decode --levers [--size 640x480] [--rounds 3]

The capture's levers instead, on a camera-like clip (GOP 50): CPU milliseconds per decoded
frame (process time, FFmpeg's threads included) with FFmpeg's automatic threads against one,
converting every frame to BGR against 1 in 5 (``target_fps`` 5 of 25) against none (the luma
only), ``skip_loop_filter``, and ``skip_frame=NONKEY`` (keyframes only: per keyframe).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "misis.settings.test")


def write_h264(path: Path, frames: int, width: int, height: int) -> None:
    import av
    import numpy as np

    rng = np.random.default_rng(1)
    background = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            image = np.roll(background, 4 * i, axis=1)  # motion, so the codec has work
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def opencv_fps(path: Path) -> float:
    import cv2

    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    started, n = time.perf_counter(), 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n / (time.perf_counter() - started)


def pyav_fps(path: Path) -> float:
    from sources.decoder import open_decoder
    from sources.local import LocalFile

    started, n = time.perf_counter(), 0
    target = LocalFile(path.name).target(open_timeout=10, read_timeout=5)
    decoder = open_decoder(
        target, source=path.name, open_timeout=10, read_timeout=5, max_pixels=3840 * 2160
    )
    while (got := decoder.read()) is not None:
        got[0].bgr()
        n += 1
    decoder.close()
    return n / (time.perf_counter() - started)


LEVERS = {
    # name: (decoder threads, convert 1 in N frames (0: none, luma only), codec options, skip)
    "auto threads, convert every frame": (0, 1, {}, None),
    "1 thread, convert every frame": (1, 1, {}, None),
    "1 thread, convert 1 in 5": (1, 5, {}, None),
    "1 thread, luma only": (1, 0, {}, None),
    "1 thread, skip_loop_filter, 1 in 5": (1, 5, {"skip_loop_filter": "all"}, None),
    "1 thread, keyframes only (NONKEY)": (1, 0, {}, "NONKEY"),
}


def lever_ms(
    path: Path, threads: int, every: int, options: dict[str, str], skip: str | None
) -> float:
    """CPU ms per decoded frame."""
    import av

    from sources.decoder import Picture

    container = av.open(str(path))
    stream = container.streams.video[0]
    stream.codec_context.thread_count = threads
    if threads != 1:
        stream.thread_type = "AUTO"
    stream.codec_context.options = options
    if skip:
        stream.codec_context.skip_frame = skip  # type: ignore[assignment]
    started, n = time.process_time(), 0
    for frame in container.decode(stream):
        picture = Picture(frame)
        if every and n % every == 0:
            picture.bgr()
        elif not every:
            picture.gray()
        n += 1
    container.close()
    return (time.process_time() - started) * 1000 / max(n, 1)


def levers(args: argparse.Namespace, width: int, height: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "camera.mp4"
        from bench.cameras import write_camera_file

        write_camera_file(path, width, height, seconds=max(args.frames // 25, 2))
        results: dict[str, list[float]] = {name: [] for name in LEVERS}
        for _ in range(args.rounds):
            for name, lever in LEVERS.items():
                results[name].append(lever_ms(path, *lever))
    print(f"{args.size} H.264 GOP 50, CPU ms per decoded frame, {args.rounds} rounds")
    for name, values in results.items():
        print(f"  {name:38} {min(values):.2f}-{max(values):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--levers", action="store_true")
    args = parser.parse_args()
    width, height = (int(x) for x in args.size.split("x"))
    import django

    django.setup()
    if args.levers:
        levers(args, width, height)
        return
    from django.conf import settings

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        settings.MISIS_VIDEO_ROOT = root
        path = root / "bench.mp4"
        write_h264(path, args.frames, width, height)
        results: dict[str, list[float]] = {"opencv": [], "pyav": []}
        for i in range(args.rounds):
            results["opencv"].append(opencv_fps(path))
            results["pyav"].append(pyav_fps(path))
            print(
                f"round {i + 1}: opencv {results['opencv'][-1]:.0f} fps,"
                f" pyav {results['pyav'][-1]:.0f} fps",
                flush=True,
            )
    ratios = [p / o for p, o in zip(results["pyav"], results["opencv"], strict=True)]
    print(f"\n{args.frames} frames of {args.size} H.264, decoded to BGR, {args.rounds} rounds")
    for name, values in results.items():
        print(
            f"{name:7} {min(values):.0f}-{max(values):.0f} fps"
            f" (median {statistics.median(values):.0f})"
        )
    median = statistics.median(ratios)
    print(f"pyav/opencv {min(ratios):.2f}-{max(ratios):.2f} (median {median:.2f})")


if __name__ == "__main__":
    main()
