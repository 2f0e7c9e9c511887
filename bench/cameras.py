"""Many real cameras on one CPU node: the capture side of the runner, per camera.

    .venv/bin/python -m bench.cameras [--size 640x480] [--steps 10,20,30,40] [--seconds 20]
                                      [--target-fps 5] [--compare] [--allocators]

One GStreamer RTSP server (testbed/media_servers/rtsp_server.py) serves an H.264 file of the
given size at 25 fps, looped, keyframe every 2 s like a camera, to every client. This process
runs N cameras the way a runner does, each with the runner's own pieces: ``VideoSource`` and
``LatestFrameFeed`` (its reader thread, the RTSP relay), ``Sampler`` at ``target_fps``,
``letterbox``, the mock detector in process, and ``PreviewWriter`` (nobody watching). Not
included: the Redis round trip to an inference worker and the database writes (bench/scale.py
measures those).

Default: steps of N cameras (cumulative). At each step, after the new cameras give their first
analysed frame, for ``--seconds`` it measures this process's CPU (cores, and % of a core per
camera), RSS per camera (over the process before any camera, and the step's increment per added
camera), analysed frames a second per camera (min and median) and BGR conversions a second.
A step is held when every camera analyses at least 90 % of ``target_fps``; it stops at the
first step not held and prints the most cameras held. The RTSP server's CPU is printed apart:
it shares the machine's cores.

``--compare``: one step (the last of ``--steps``) in child processes, side by side, the
capture as it was (FFmpeg's automatic decoder threads, every frame converted to BGR, a preview
encoded 4 times a second) against the capture as it is now.
``--allocators``: one step in child processes under glibc malloc, ``MALLOC_ARENA_MAX=2`` and
jemalloc (``LD_PRELOAD``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "misis.settings.test")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/13")

import django

django.setup()

import psutil  # noqa: E402
from django.conf import settings  # noqa: E402

from inference.backends.base import DetectOptions  # noqa: E402
from inference.backends.mock import MockBackend  # noqa: E402
from inference.preprocess import letterbox  # noqa: E402
from misis import keys  # noqa: E402
from misis.redis_client import get_redis  # noqa: E402
from runner.feeds import LatestFrameFeed  # noqa: E402
from runner.sampling import Sampler  # noqa: E402
from runner.sources import Frame, SourceError, VideoSource  # noqa: E402
from scenarios.preview import PreviewWriter  # noqa: E402
from sources import decoder  # noqa: E402
from testbed.media_servers.servers import RtspServer  # noqa: E402

JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
ALLOCATORS = {
    "glibc": {},
    "MALLOC_ARENA_MAX=2": {"MALLOC_ARENA_MAX": "2"},
    "jemalloc": {"LD_PRELOAD": JEMALLOC},
}


def write_camera_file(path: Path, width: int, height: int, seconds: int = 8) -> None:
    """An H.264 clip with motion everywhere (the codec has work), GOP 50 like a camera."""
    import av
    import cv2
    import numpy as np

    rng = np.random.default_rng(1)
    noise = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    background = cv2.GaussianBlur(noise, (0, 0), 3).astype(np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"g": "50", "preset": "veryfast", "tune": "zerolatency"}
        for i in range(25 * seconds):
            image = np.roll(background, 4 * i, axis=1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


@dataclasses.dataclass
class Mode:
    """How the capture runs: as now (default), or as it was before lazy conversion."""

    eager_convert: bool = False  # convert every decoded frame in the reader thread
    preview_always: bool = False  # encode previews whether or not anyone watches


class Camera:
    """One scenario's capture: the runner's reader thread, and a loop thread that samples."""

    def __init__(self, url: str, target_fps: float, mode: Mode) -> None:
        self.id = str(uuid.uuid4())
        self.analysed = 0
        self.error: BaseException | None = None
        self.source = VideoSource(url)
        if mode.eager_convert:
            read = self.source.read

            def read_and_convert() -> Frame | None:
                frame = read()
                if frame is not None:
                    frame.image  # noqa: B018 - the old decoder converted every frame
                return frame

            self.source.read = read_and_convert  # type: ignore[method-assign]
        if mode.preview_always:
            get_redis().set(keys.preview_watched(self.id), b"1", ex=3600)
        self.sampler = Sampler(target_fps)
        self.preview = PreviewWriter(self.id)
        self.backend = MockBackend()
        self.options = DetectOptions(confidence=0.25, classes=None, imgsz=640)
        self._stop = threading.Event()
        self.source.open()
        self.feed = LatestFrameFeed(self.source, scenario_id=self.id, reconnect_timeout=30)
        self._thread = threading.Thread(target=self._loop, name="camera-loop", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                frame = self.feed.next_frame(timeout=0.05)
                if frame is None or not self.sampler.take(frame.pts):
                    continue
                image, _ = letterbox(frame.image, self.options.imgsz)
                boxes = self.backend.predict([image], [self.options])[0]
                self.analysed += 1
                self.preview.offer(frame.image, [dataclasses.asdict(b) for b in boxes])
        except BaseException as exc:
            self.error = exc

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.feed.close()
        get_redis().delete(keys.preview(self.id), keys.preview_watched(self.id))


def rss_mb(proc: psutil.Process) -> float:
    return float(proc.memory_info().rss) / 2**20


def cpu_s(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def open_cameras(count: int, url: str, target_fps: float, mode: Mode) -> list[Camera]:
    """``count`` cameras, each open tried 3 times (a loaded machine makes RTSP probing fail)."""
    cameras = []
    for _ in range(count):
        for attempt in range(3):
            try:
                cameras.append(Camera(url, target_fps, mode))
                break
            except SourceError:
                if attempt == 2:
                    raise
                time.sleep(1.0)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(c.analysed for c in cameras):
        time.sleep(0.2)
    return cameras


def measure(
    cameras: list[Camera], seconds: float, server: psutil.Process | None
) -> dict[str, float]:
    me = psutil.Process()
    before = [c.analysed for c in cameras]
    conv0, cpu0, t0 = decoder.conversions(), cpu_s(me), time.monotonic()
    srv0 = cpu_s(server) if server else 0.0
    rss_samples = []
    while time.monotonic() - t0 < seconds:
        time.sleep(1.0)
        rss_samples.append(rss_mb(me))
    wall = time.monotonic() - t0
    rates = [(c.analysed - b) / wall for c, b in zip(cameras, before, strict=True)]
    return {
        "cameras": len(cameras),
        "cores": (cpu_s(me) - cpu0) / wall,
        "server_cores": (cpu_s(server) - srv0) / wall if server else 0.0,
        "rss_mb": max(rss_samples),
        "fps_min": min(rates),
        "fps_median": statistics.median(rates),
        "conversions_per_s": (decoder.conversions() - conv0) / wall,
        "errors": sum(1 for c in cameras if c.error is not None),
        "load1": os.getloadavg()[0],
    }


def run_steps(
    url: str, steps: list[int], seconds: float, target_fps: float, mode: Mode, server_pid: int
) -> list[dict[str, float]]:
    me = psutil.Process()
    server = psutil.Process(server_pid) if server_pid else None
    base = rss_mb(me)
    cameras: list[Camera] = []
    results = []
    previous: dict[str, float] | None = None
    try:
        for n in steps:
            cameras += open_cameras(n - len(cameras), url, target_fps, mode)
            row = measure(cameras, seconds, server)
            row["base_rss_mb"] = base
            row["rss_per_camera_mb"] = (row["rss_mb"] - base) / n
            if previous is not None:
                added = n - previous["cameras"]
                row["rss_per_added_camera_mb"] = (row["rss_mb"] - previous["rss_mb"]) / added
            row["held"] = float(row["fps_min"] >= 0.9 * target_fps and not row["errors"])
            results.append(row)
            previous = row
            if not row["held"]:
                break
    finally:
        for camera in cameras:
            camera.close()
    return results


def print_row(label: str, row: dict[str, float], target_fps: float) -> None:
    n = row["cameras"]
    added = row.get("rss_per_added_camera_mb")
    print(
        f"{label:<22} {int(n):>3} cameras: cpu {row['cores']:.2f} cores"
        f" ({100 * row['cores'] / n:.1f} % of a core each), server {row['server_cores']:.2f};"
        f" RSS {row['rss_mb']:.0f} MB ({row['rss_per_camera_mb']:.1f} MB/camera over"
        f" {row['base_rss_mb']:.0f} MB"
        + (f", {added:.1f} MB per added camera" if added is not None else "")
        + f"); analysed/s per camera min {row['fps_min']:.2f} median {row['fps_median']:.2f}"
        f" (target {target_fps:g}); BGR conversions/s {row['conversions_per_s']:.0f};"
        f" {'held' if row['held'] else 'NOT held'}; load {row['load1']:.1f}",
        flush=True,
    )


def child(args: argparse.Namespace, label: str, env: dict[str, str], extra: list[str]) -> None:
    """One step in a fresh process (so that allocators and modes do not share a heap)."""
    argv = [sys.executable, "-m", "bench.cameras", "--child", "--url", args.url]
    argv += ["--steps", str(args.steps[-1]), "--seconds", str(args.seconds)]
    argv += ["--target-fps", str(args.target_fps), "--server-pid", str(args.server_pid), *extra]
    out = subprocess.run(
        argv, env={**os.environ, **env}, capture_output=True, text=True, check=False
    )
    rows = [json.loads(line[5:]) for line in out.stdout.splitlines() if line.startswith("ROW: ")]
    if not rows:
        print(f"{label}: failed\n{out.stderr[-2000:]}", flush=True)
        return
    print_row(label, rows[-1], args.target_fps)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--steps", default="10,20,30,40")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--target-fps", type=float, default=5.0)
    parser.add_argument("--compare", action="store_true")
    parser.add_argument("--allocators", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--old", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--server-pid", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.steps = [int(s) for s in str(args.steps).split(",")]

    if args.child:
        mode = Mode(eager_convert=True, preview_always=True) if args.old else Mode()
        if args.old:
            settings.MISIS_DECODER_THREADS = 0
        for row in run_steps(
            args.url, args.steps, args.seconds, args.target_fps, mode, args.server_pid
        ):
            print("ROW: " + json.dumps(row), flush=True)
        return

    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / f"camera-{width}x{height}.mp4"
        write_camera_file(clip, width, height)
        server = RtspServer(clip, Path(tmp) / "rtsp.log")
        server.start()
        assert server.proc is not None
        try:
            args.url, args.server_pid = server.url("file"), server.proc.pid
            print(
                f"{width}x{height} H.264 at 25 fps, target_fps {args.target_fps:g},"
                f" {psutil.cpu_count()} cores, load {os.getloadavg()}",
                flush=True,
            )
            if args.compare:
                child(args, "before (eager, 3 thr)", {}, ["--old"])
                child(args, "now (lazy, 1 thread)", {}, [])
            elif args.allocators:
                for label, env in ALLOCATORS.items():
                    child(args, label, env, [])
            else:
                rows = run_steps(
                    args.url, args.steps, args.seconds, args.target_fps, Mode(), server.proc.pid
                )
                for row in rows:
                    print_row("now", row, args.target_fps)
                held = [int(r["cameras"]) for r in rows if r["held"]]
                most = max(held) if held else 0
                print(f"most cameras held at full target_fps: {most} (of steps {args.steps})")
        finally:
            server.kill()


if __name__ == "__main__":
    main()
