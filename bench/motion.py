"""Detector calls per scenario with the motion gate off and on, in one run.

    .venv/bin/python -m bench.motion [--frames 250] [--rounds 3]

Three 640x480 videos at 25 fps: ``still`` (a fixed camera on an empty scene, nothing but sensor
noise), ``busy`` (a person walking across the whole time, runner/samples.py) and ``walk-stand``
(the person walks in over the first fifth, then stands still). Each runs as a file scenario
through the real runner loop (runner/loop.py, in this process) against the mock detector
behind an in-process batcher, on PostgreSQL (database misis_bench) and Redis (database 13),
once with ``motion`` off and once on, at every frame and at ``target_fps`` 5. The detector's
calls are counted at the batcher; ``frames_skipped`` and ``frames_processed`` are read back
from the scenario. File sources give the same calls every run: the rounds only time the gate's
own cost a frame (its grey copy and comparison) at 640x480 and 1920x1080.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import fresh_database

STILL_NOISE = 6.0  # grey levels of sensor noise


def videos(root: Path, frames: int) -> dict[str, str]:
    from runner.samples import write_static_video, write_walker_video

    size = (640, 480)
    write_static_video(root / "still.mp4", frames=frames, fps=25, size=size, noise=STILL_NOISE)
    write_walker_video(root / "busy.mp4", frames=frames, fps=25, size=size)
    walk = frames // 5
    write_walker_video(
        root / "walk-stand.mp4",
        frames=walk,
        fps=25,
        size=size,
        path_x=(0.0, 0.4),
        stay=frames - walk,
    )
    return {"still": "still.mp4", "busy": "busy.mp4", "walk-stand": "walk-stand.mp4"}


def run_one(source: str, params: dict[str, Any], batcher: Any, owner: Any) -> tuple[int, Any]:
    """Run a file scenario to its end in this thread; (detector calls, the scenario)."""
    from runner.loop import run_scenario
    from scenarios.models import Scenario, Status
    from scenarios.services import commands

    scenario = commands.scenario_create(owner=owner, source=source, params=params)
    scenario.refresh_from_db()
    if scenario.status == Status.INIT_STARTUP:  # the broker took no start: walk it ourselves
        scenario.begin_startup()
        scenario.save()
    before = batcher.frames
    run_scenario(str(scenario.pk), scenario.epoch)
    calls = batcher.frames - before
    return calls, Scenario.objects.get(pk=scenario.pk)


def gate_cost(size: tuple[int, int], rounds: int, frames: int = 200) -> list[float]:
    """Milliseconds a frame of MotionGate.decide on still noisy frames of ``size``."""
    import numpy as np

    from runner.motion import MotionGate
    from runner.sources import Frame
    from sources.decoder import Picture

    w, h = size
    rng = np.random.default_rng(0)
    base = np.linspace(60, 190, w, dtype=np.float32)[None, :, None].repeat(h, 0).repeat(3, 2)
    images = [
        np.clip(base + rng.normal(0, STILL_NOISE, base.shape), 0, 255).astype(np.uint8)
        for _ in range(8)
    ]
    out = []
    for _ in range(rounds):
        gate = MotionGate(max_gap=2.0, threshold=0.002)
        now = datetime.now(UTC)
        t0 = time.perf_counter()
        for i in range(frames):
            gate.decide(Frame(i, i / 25, now, Picture.from_bgr(images[i % len(images)])))
        out.append((time.perf_counter() - t0) / frames * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=250, help="frames a video (25 fps)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the gate's timing")
    args = parser.parse_args()

    fresh_database()
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from inference.backends.mock import MockBackend
    from inference.batcher import Batcher

    root = Path(tempfile.mkdtemp(prefix="misis-bench-motion-"))
    settings.MISIS_VIDEO_ROOT = root
    settings.MISIS_QUOTA_ACTIVE_SCENARIOS = 1000
    names = videos(root, args.frames)
    owner = get_user_model().objects.create_user(username="bench")
    batcher = Batcher(MockBackend(), max_batch=4, max_wait_ms=2)
    thread = threading.Thread(target=batcher.run, daemon=True)
    thread.start()
    try:
        print(f"{args.frames} frames a video, 640x480 at 25 fps; mock detector")
        print(
            "| video | target_fps | detector calls, motion off | motion on | fewer"
            " | frames_skipped (on) |"
        )
        print("| --- | --- | --- | --- | --- | --- |")
        for video, source in names.items():
            for fps in (None, 5):
                base = {} if fps is None else {"target_fps": fps}
                off, s_off = run_one(source, {**base, "motion": False}, batcher, owner)
                on, s_on = run_one(source, {**base, "motion": True}, batcher, owner)
                assert s_off.frames_processed == off and s_on.frames_processed == on
                assert s_on.frames_skipped == off - on, (s_on.frames_skipped, off, on)
                print(
                    f"| {video} | {fps or 'every frame'} | {off} | {on} |"
                    f" {1 - on / off:.0%} | {s_on.frames_skipped} |"
                )
    finally:
        batcher.stop_event.set()
        thread.join(timeout=5)
    for size in ((640, 480), (1920, 1080)):
        cost = gate_cost(size, args.rounds)
        print(
            f"gate cost a frame at {size[0]}x{size[1]}: {min(cost):.2f} - {max(cost):.2f} ms"
            f" ({args.rounds} rounds)"
        )


if __name__ == "__main__":
    main()
