"""Detection throughput and latency, side by side in one run, same weights, threads and frames.

    .venv/bin/python -m bench.detection [--frames 60] [--device cpu] [--threads 2]

(a) the model called directly in this process, at batch 1 and at larger batches;
(b) one scenario through the whole system (API, runner, inference worker over Redis);
(c) four scenarios at once through the whole system;
and the latency from frame read to prediction visible over the API, against the model's own
time. Prints the ratios the targets are about. Uses its own database (misis_bench) and Redis
database 13; starts and stops its own stack.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import Api, bench_token, fresh_database, wait

PORT = 8766
api = Api(PORT)
call = api.call


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def read_frames(path: Path) -> list[Any]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames: list[Any] = []
    while True:
        ok, img = cap.read()
        if not ok:
            return frames
        frames.append(img)


def direct(model: Any, frames: list[Any]) -> dict[int, float]:
    """(a): frames per second of the model called in-process, per batch size."""
    from inference.backends.base import DetectOptions

    out = {}
    for batch in (1, 2, 4):
        model.predict(frames[:batch], [DetectOptions()] * batch)  # warm this shape
        n = len(frames) - len(frames) % batch
        t0 = time.perf_counter()
        for i in range(0, n, batch):
            model.predict(frames[i : i + batch], [DetectOptions()] * batch)
        out[batch] = n / (time.perf_counter() - t0)
    return out


def run_scenarios(token: str, count: int, frames: int) -> tuple[float, list[dict[str, Any]]]:
    """(b)/(c): frames per second over all scenarios, from first to last frame analysed."""
    ids = [
        call("POST", "/scenario/", token, {"source": "people.mp4", "name": f"bench{i}"})["id"]
        for i in range(count)
    ]
    for sid in ids:
        wait(lambda s=sid: call("GET", f"/scenario/{s}/", token)["status"] == "inactive", 600)
    results = []
    for sid in ids:
        page = call("GET", f"/prediction/{sid}/?limit=1000", token)
        assert len(page["results"]) == frames, (sid, len(page["results"]))
        results.extend(page["results"])
    # captured_at is when the runner read the frame; the span covers reading to the last read.
    starts = [ts(r["captured_at"]) for r in results]
    per_frame = (max(starts) - min(starts)) / (len(results) - count)
    return 1.0 / per_frame, results


def latency(token: str, poll: float, seconds: float) -> tuple[list[float], list[float]]:
    """Frame read -> prediction visible to a client polling GET /prediction/?after=.

    On a looping file, which the runner treats as a camera: played at its own 25 fps, the
    newest frame analysed each time, one frame at the detector.
    """
    body = {"source": "people.mp4", "name": "latency", "params": {"loop": True}}
    sid = call("POST", "/scenario/", token, body)["id"]
    seen: list[float] = []
    model: list[float] = []
    after = -1
    stop_at = time.monotonic() + seconds
    while True:
        if time.monotonic() > stop_at:
            call("POST", f"/scenario/{sid}/", token, {"status": "init_shutdown"})
            stop_at = float("inf")
        page = call("GET", f"/prediction/{sid}/?after={after}&limit=1000", token)
        now = time.time()
        for r in page["results"]:
            seen.append(now - ts(r["captured_at"]))
            model.append(r["inference_ms"] / 1000)
            after = r["frame_index"]
        if page["status"] == "inactive" and not page["results"]:
            return seen, model
        time.sleep(poll)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--poll", type=float, default=0.02)
    args = parser.parse_args()

    fresh_database()

    from runner.samples import write_people_video
    from testbed.stack import Stack

    work = Path(tempfile.mkdtemp(prefix="misis-bench-"))
    video = write_people_video(work / "videos" / "people.mp4", frames=args.frames)
    frames = read_frames(video)
    print(
        f"# detection bench: {len(frames)} frames 640x480, device {args.device}, "
        f"{args.threads} threads, default weights"
    )

    from inference.backends.yolo import YoloBackend, default_model_path

    model = YoloBackend(default_model_path(), device=args.device, threads=args.threads)
    a_before = direct(model, frames)

    token = bench_token()
    stack = Stack(
        work,
        work / "videos",
        api_port=PORT,
        MISIS_INFERENCE_BACKEND="yolo",
        MISIS_DEVICE=args.device,
        MISIS_INFERENCE_THREADS=str(args.threads),
    )
    stack.start_all()
    try:
        wait(
            lambda: (
                (h := api.health())
                and h["workers"]["inference"] == 1
                and h["inference"]["backend"] == "yolo"
            ),
            120,
        )
        run_scenarios(token, 1, len(frames))  # warm the worker on this frame shape
        b, one = run_scenarios(token, 1, len(frames))
        c, four = run_scenarios(token, 4, len(frames))
        seen, model_s = latency(token, args.poll, 20.0)
        # The machine's speed drifts: measure the model directly again, and use the mean.
        a_after = direct(model, frames)
        a = {k: (a_before[k] + a_after[k]) / 2 for k in a_before}
        best = max(a, key=lambda k: a[k])
        for batch in a:
            print(
                f"(a) direct, batch {batch}:            {a[batch]:6.2f} frames/s "
                f"(before {a_before[batch]:.2f}, after {a_after[batch]:.2f})"
            )
        print(
            f"(b) one scenario, whole system:   {b:6.2f} frames/s "
            f"(model p50 {statistics.median(r['inference_ms'] for r in one):.0f} ms a call)"
        )
        print(
            f"(c) four scenarios, whole system: {c:6.2f} frames/s, all four together "
            f"(model p50 {statistics.median(r['inference_ms'] for r in four):.0f} ms a call)"
        )
        p50, p50_model = statistics.median(seen), statistics.median(model_s)
        print(
            f"latency read -> visible over API: p50 {p50 * 1000:6.1f} ms, "
            f"p95 {sorted(seen)[int(0.95 * (len(seen) - 1))] * 1000:6.1f} ms; "
            f"model time p50 {p50_model * 1000:6.1f} ms (client polls every "
            f"{args.poll * 1000:.0f} ms)"
        )
        print(f"(b) / (a) batch 1       = {b / a[1]:.3f}   (target >= 0.9)")
        print(f"(c) / (a) batch {best} (best) = {c / a[best]:.3f}   (target >= 0.9)")
        print(f"latency p50 - model p50 = {(p50 - p50_model) * 1000:.1f} ms   (target < 50 ms)")
    finally:
        stack.stop_all()


if __name__ == "__main__":
    main()
