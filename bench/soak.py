"""Memory over time: N cameras (bench/cameras.py's runner capture) for a while, with churn.

    .venv/bin/python -m bench.soak [--cameras 20] [--minutes 60] [--size 640x480]
                                   [--churn 2] [--churn-every 60] [--warmup 2]

Every ``--churn-every`` seconds ``--churn`` cameras are closed and as many new ones opened, as
scenarios stop and start (memory a stopped scenario does not give back shows as a slope).
RSS is sampled every 10 s; each minute prints a line. At the end: the RSS slope in MB per hour
(least squares over the samples after ``--warmup`` minutes), RSS at the end of the warm-up and
at the end, and analysed frames a second per camera. Beside RSS, the C heap in use (what the
allocator has handed out: jemalloc's ``stats.allocated``, or glibc's ``mallinfo2``) and the
Python interpreter's blocks tell a leak (they grow) from an allocator keeping freed pages (RSS
grows, they do not). Run under the allocator to measure, e.g.
``MALLOC_ARENA_MAX=2`` or ``LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2``.

``--open-close N`` instead: one camera at a time, opened, run for a second and closed, N times
in a row; RSS every 5 (what scenarios that come and go leave behind, without the noise of
the others).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench.cameras import Mode, open_cameras, rss_mb, write_camera_file
from testbed.media_servers.servers import RtspServer


def slope_per_hour(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB), in MB per hour."""
    n = len(samples)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in samples) / n
    mean_m = sum(m for _, m in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    cov = sum((t - mean_t) * (m - mean_m) for t, m in samples)
    return cov / var * 3600 if var else 0.0


def allocator() -> str:
    if os.environ.get("LD_PRELOAD"):
        return os.environ["LD_PRELOAD"]
    if "MALLOC_ARENA_MAX" in os.environ:
        return f"MALLOC_ARENA_MAX={os.environ['MALLOC_ARENA_MAX']}"
    return "glibc"


class MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2``."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def heap_mb() -> float | None:
    """What the C allocator has handed out and not had back (jemalloc's stats.allocated, or
    glibc's mallinfo2), in MB: when RSS grows and this does not, the allocator is holding
    freed memory; when this grows too, something is kept. None where neither is there."""
    libc = ctypes.CDLL(None)
    if hasattr(libc, "mallctl"):  # jemalloc preloaded
        epoch, size = ctypes.c_uint64(1), ctypes.c_size_t(8)
        libc.mallctl(b"epoch", None, None, ctypes.byref(epoch), size)  # refresh the stats
        value, size = ctypes.c_size_t(), ctypes.c_size_t(ctypes.sizeof(ctypes.c_size_t))
        if libc.mallctl(b"stats.allocated", ctypes.byref(value), ctypes.byref(size), None, 0):
            return None
        return value.value / 2**20
    if hasattr(libc, "mallinfo2"):
        libc.mallinfo2.restype = MallInfo2
        info: MallInfo2 = libc.mallinfo2()
        return float(info.uordblks + info.hblkhd) / 2**20
    return None


def python_blocks() -> int:
    """Memory blocks the Python interpreter holds (objects and their buffers)."""
    return sys.getallocatedblocks()


def open_close(times: int, width: int, height: int, target_fps: float) -> None:
    me = psutil.Process()
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "camera.mp4"
        write_camera_file(clip, width, height, seconds=4)
        server = RtspServer(clip, Path(tmp) / "rtsp.log")
        server.start()
        rows = []
        try:
            for i in range(times + 1):
                camera = open_cameras(1, server.url("file"), target_fps, Mode())[0]
                time.sleep(1.0)
                camera.close()
                if i % 5 == 0:
                    rows.append(f"{i}: {rss_mb(me):.0f}")
        finally:
            server.kill()
    print(f"open-close {allocator()}, RSS MB after N cameras: " + ", ".join(rows), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cameras", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--target-fps", type=float, default=5.0)
    parser.add_argument("--churn", type=int, default=2)
    parser.add_argument("--churn-every", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=2.0, help="minutes left out of the slope")
    parser.add_argument("--open-close", type=int, default=0)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    if args.open_close:
        open_close(args.open_close, width, height, args.target_fps)
        return
    me = psutil.Process()
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "camera.mp4"
        write_camera_file(clip, width, height)
        server = RtspServer(clip, Path(tmp) / "rtsp.log")
        server.start()
        url = server.url("file")
        base = rss_mb(me)
        print(
            f"soak: {args.cameras} cameras {width}x{height} at target_fps {args.target_fps:g},"
            f" churn {args.churn} every {args.churn_every:g} s, {args.minutes:g} min,"
            f" allocator {allocator()}; RSS before cameras {base:.0f} MB; load {os.getloadavg()}",
            flush=True,
        )
        cameras = open_cameras(args.cameras, url, args.target_fps, Mode())
        started = time.monotonic()
        samples: list[tuple[float, float]] = []
        heap: list[tuple[float, float]] = []
        blocks0 = python_blocks()
        analysed0, opened = 0, args.cameras
        next_churn, next_print = args.churn_every, 60.0
        rng = random.Random(1)
        try:
            while (elapsed := time.monotonic() - started) < args.minutes * 60:
                time.sleep(10.0)
                elapsed = time.monotonic() - started
                samples.append((elapsed, rss_mb(me)))
                if (in_use := heap_mb()) is not None:
                    heap.append((elapsed, in_use))
                if args.churn and elapsed >= next_churn:
                    next_churn += args.churn_every
                    for _ in range(args.churn):
                        old = cameras.pop(rng.randrange(len(cameras)))
                        analysed0 += old.analysed
                        old.close()
                    cameras += open_cameras(args.churn, url, args.target_fps, Mode())
                    opened += args.churn
                if elapsed >= next_print:
                    next_print += 60.0
                    errors = sum(1 for c in cameras if c.error is not None)
                    held = f"  heap {heap[-1][1]:.0f} MB" if heap else ""
                    print(
                        f"{elapsed / 60:5.1f} min  RSS {samples[-1][1]:.0f} MB"
                        f" ({(samples[-1][1] - base) / args.cameras:.1f} MB/camera){held}"
                        f"  Python blocks {python_blocks() - blocks0:+d}"
                        f"  cameras opened {opened}  errors {errors}"
                        f"  load {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
        finally:
            wall = time.monotonic() - started
            analysed = analysed0 + sum(c.analysed for c in cameras)
            for camera in cameras:
                camera.close()
            server.kill()
        after_warmup = [s for s in samples if s[0] >= args.warmup * 60]
        heap_after = [s for s in heap if s[0] >= args.warmup * 60]
        if heap_after:
            print(
                f"heap slope after {args.warmup:g} min: {slope_per_hour(heap_after):+.1f} MB/hour"
                f" ({heap_after[0][1]:.0f} MB at {args.warmup:g} min, {heap[-1][1]:.0f} MB at"
                f" the end); Python blocks {python_blocks() - blocks0:+d} since the cameras opened",
                flush=True,
            )
        at_warmup = after_warmup[0][1] if after_warmup else float("nan")
        print(
            f"RSS slope after {args.warmup:g} min: {slope_per_hour(after_warmup):+.1f} MB/hour"
            f" ({at_warmup:.0f} MB at {args.warmup:g} min, {samples[-1][1]:.0f} MB at"
            f" {samples[-1][0] / 60:.1f} min, max {max(m for _, m in samples):.0f} MB);"
            f" analysed {analysed / wall / args.cameras:.2f} frames/s per camera;"
            f" load {os.getloadavg()}",
            flush=True,
        )


if __name__ == "__main__":
    main()
