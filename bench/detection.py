"""Detection throughput and latency, side by side in one run, same weights, threads and frames.

    .venv/bin/python -m bench.detection [--frames 300] [--device cpu] [--threads 2]
        [--runtimes openvino,onnx,torch] [--batches 1,4] [--runtime auto] [--seconds 6]
    .venv/bin/python -m bench.detection --device cuda:0     # batches 1..64, fp16, TensorRT

(a) each runtime called directly in this process (the backend the worker would build, with its
    pre- and post-processing), at each batch size, before and after the rest (the machine's
    speed drifts: the mean is used);
(b) one scenario through the whole system (API, runner, inference worker over Redis) on the
    runtime the worker chooses (``--runtime``, default auto);
(c) four scenarios at once through the whole system;
each of (b) and (c) is held against its runtime measured directly just before and just after
it, the stack paused (SIGSTOP) meanwhile, as the VM's speed drifts within minutes;
and the latency from frame read to prediction visible over the API, against the model's own
time, with the runners' wait for a fresher frame (runner/freshness.py) off, then on. Prints
the ratios the targets are about. Uses its own database (misis_bench) and Redis database 13;
starts and stops its own stack. On CUDA the runner still decodes on the CPU;
bench/gpu.py measures NVDEC decoding and streams per GPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import Api, bench_token, fresh_database, pct, wait
from bench.scale_measure import CpuMeter, stack_meter

PORT = 8766
# Settings of the stack a run may set in its environment; each one given is printed.
TUNING = ("MISIS_MAX_IN_FLIGHT", "MISIS_MAX_WAIT_MS")
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


def direct(model: Any, frames: list[Any], batches: list[int], seconds: float) -> dict[int, float]:
    """(a): frames per second of a backend called in-process, per batch size, each measured
    for about ``seconds`` over the video's frames in order."""
    from inference.backends.base import DetectOptions

    out = {}
    for batch in batches:
        chunk = [frames[i % len(frames)] for i in range(batch)]
        model.predict(chunk, [DetectOptions()] * batch)  # warm this shape
        done, start, t0 = 0, 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds or done == 0:
            chunk = [frames[(start + i) % len(frames)] for i in range(batch)]
            model.predict(chunk, [DetectOptions()] * batch)
            done, start = done + batch, start + batch
        out[batch] = done / (time.perf_counter() - t0)
    return out


def runtimes_for(device: str) -> list[str]:
    """The runtimes worth measuring on ``device``: all CPU ones, or the GPU ones installed."""
    import importlib.util

    if device == "cpu":
        return ["openvino", "onnx", "torch"]
    found = ["torch"]
    if importlib.util.find_spec("tensorrt") is not None:
        found.insert(0, "tensorrt")
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        found.append("onnx")
    return found


def require_cuda(device: str) -> None:
    """Stop with a clear message when ``device`` is a GPU this machine does not have."""
    if device == "cpu":
        return
    import torch

    if not torch.cuda.is_available():
        print(
            f"--device {device}: no CUDA GPU on this machine (torch.cuda.is_available() is "
            "False). Run the GPU benches on a node with an NVIDIA GPU and its driver.",
            file=sys.stderr,
        )
        raise SystemExit(2)


def run_scenarios(token: str, count: int, frames: int) -> tuple[float, list[dict[str, Any]]]:
    """(b)/(c): frames per second over all scenarios, from first to last frame analysed."""
    ids = [
        call("POST", "/scenario/", token, {"source": "people.mp4", "name": f"bench{i}"})["id"]
        for i in range(count)
    ]
    for sid in ids:
        # Polled once a second: the API's CPU would be taken from the detector (the rate is
        # measured from the frames' own times, not from this).
        wait(lambda s=sid: call("GET", f"/scenario/{s}/", token)["status"] == "inactive", 600, 1.0)
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
    """Frame read -> prediction visible to a client polling GET /prediction/?after= over one
    kept-alive connection.

    On a looping file, which the runner treats as a camera: played at its own 25 fps, the
    newest frame analysed each time, one frame at the detector.
    """
    body = {"source": "people.mp4", "name": "latency", "params": {"loop": True}}
    sid = call("POST", "/scenario/", token, body)["id"]
    seen: list[float] = []
    model: list[float] = []
    after = -1
    stop_at = time.monotonic() + seconds
    poller = api.poller(token)
    while True:
        if time.monotonic() > stop_at:
            call("POST", f"/scenario/{sid}/", token, {"status": "init_shutdown"})
            stop_at = float("inf")
        page = poller.get(f"/prediction/{sid}/?after={after}&limit=1000")
        now = time.time()
        for r in page["results"]:
            seen.append(now - ts(r["captured_at"]))
            model.append(r["inference_ms"] / 1000)
            after = r["frame_index"]
        if page["status"] == "inactive" and not page["results"]:
            poller.close()
            return seen, model
        time.sleep(poll)


def cpu_per_frame(meter: CpuMeter, frames: int) -> str:
    """Milliseconds of CPU a frame for each part of the stack since ``meter.start()`` (the
    scenarios' start and stop included), the biggest first."""
    elapsed = time.monotonic() - meter.t0
    used = {k: v / 100 * elapsed * 1000 / frames for k, v in meter.stop().items()}
    parts = sorted((k for k in used if k != "system" and used[k] >= 0.05), key=lambda k: -used[k])
    return ", ".join(f"{k} {used[k]:.1f}" for k in parts) + f" (all {used['system']:.1f}) ms"


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--poll", type=float, default=0.02)
    parser.add_argument("--runtimes", default="", help="comma-separated; default: all here")
    parser.add_argument("--batches", default="", help="default 1,4 on a CPU, 1,8,16,32,64 on GPU")
    parser.add_argument("--runtime", default="auto", help="what the pipeline's worker runs")
    parser.add_argument("--seconds", type=float, default=6.0, help="per direct measurement")
    parser.add_argument("--max-batch", type=int, default=0, help="the worker's; 0: best measured")
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    args = parser.parse_args()
    require_cuda(args.device)
    gpu = args.device != "cpu"
    batches = ints(args.batches) or ([1, 8, 16, 32, 64] if gpu else [1, 4])
    runtimes = [r for r in args.runtimes.split(",") if r] or runtimes_for(args.device)

    fresh_database()

    from django.conf import settings

    from inference.backends import build_yolo, choose_runtime
    from runner.samples import write_people_video
    from testbed.stack import Stack

    pipeline_runtime = choose_runtime(args.runtime, args.device)
    work = Path(tempfile.mkdtemp(prefix="misis-bench-"))
    video = write_people_video(work / "videos" / "people.mp4", frames=args.frames)
    frames = read_frames(video)
    print(
        f"# detection bench: {len(frames)} frames 640x480, device {args.device}"
        f"{' fp16' if gpu else ''}, {args.threads} threads, default weights; runtimes "
        f"{', '.join(runtimes)}; pipeline on {pipeline_runtime}"
        f"{' (the worker measures which)' if pipeline_runtime == 'auto' else ''}; load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )

    models = {
        runtime: build_yolo(
            runtime,
            model=None,
            device=args.device,
            half=gpu,
            threads=args.threads,
            cache=Path(settings.MISIS_MODEL_CACHE),
        )
        for runtime in runtimes
    }
    before = {r: direct(m, frames, batches, args.seconds) for r, m in models.items()}
    # The worker batches up to the size its runtime did best at just now (on a 2-core CPU
    # OpenVINO is slower per frame at 4 than at 1), unless --max-batch says otherwise.
    # With --runtime auto on a CPU the worker measures which runtime is faster itself (and the
    # bench reads its choice from /health/): it batches up to the best batch of the fastest.
    measured = before.get(pipeline_runtime) or max(
        before.values(), key=lambda speeds: max(speeds.values()), default=None
    )
    max_batch = args.max_batch or (max(measured, key=measured.__getitem__) if measured else 4)

    token = bench_token()
    stack = Stack(
        work,
        work / "videos",
        api_port=PORT,
        MISIS_INFERENCE_BACKEND="yolo",
        MISIS_RUNTIME=pipeline_runtime,
        MISIS_DEVICE=args.device,
        MISIS_INFERENCE_THREADS=str(args.threads),
        MISIS_MAX_BATCH=str(max_batch),
    )
    stack.start_all()
    try:
        wait(
            lambda: (
                (h := api.health())
                and h["workers"]["inference"] == 1
                and h["inference"]["backend"] == "yolo"
                and (
                    h["inference"]["runtime"] == pipeline_runtime
                    or (pipeline_runtime == "auto" and h["inference"]["runtime"] in runtimes)
                )
            ),
            300,
        )
        chosen = api.health()
        assert chosen is not None, "the API stopped answering"
        pipeline_runtime = str(chosen["inference"]["runtime"])  # what auto chose
        run_scenarios(token, 1, len(frames))  # warm the worker on this frame shape
        pipeline_model = models.get(pipeline_runtime)

        def beside() -> dict[int, float]:
            """The pipeline's runtime direct, right now, the stack paused (this VM's speed
            drifts within minutes: each of (b) and (c) is compared with what was measured
            just before and just after it)."""
            if pipeline_model is None:
                return {}
            with stack.paused():
                return direct(pipeline_model, frames, batches, args.seconds)

        near = [beside()]
        meter = stack_meter(stack)
        meter.start()
        b, one = run_scenarios(token, 1, len(frames))
        cpu_b = cpu_per_frame(meter, len(one))
        near.append(beside())
        meter.start()
        c, four = run_scenarios(token, 4, len(frames))
        cpu_c = cpu_per_frame(meter, len(four))
        near.append(beside())
        # Latency with the runners' wait for a fresher frame off, then on (the default), each
        # on runners restarted with the setting (runner/freshness.py).
        runners = ["runner1", "runner2"]
        stack.restart(runners, MISIS_FRESH_FRAME_COST="0")
        stale, stale_model = latency(token, args.poll, args.latency_seconds)
        stack.restart(runners, MISIS_FRESH_FRAME_COST=str(settings.MISIS_FRESH_FRAME_COST))
        seen, model_s = latency(token, args.poll, args.latency_seconds)
    finally:
        stack.stop_all()
    after = {r: direct(m, frames, batches, args.seconds) for r, m in models.items()}
    a = {r: {k: (before[r][k] + after[r][k]) / 2 for k in batches} for r in runtimes}

    for runtime in runtimes:
        for batch in batches:
            print(
                f"(a) {runtime:9s} direct, batch {batch:2d}: {a[runtime][batch]:7.2f} frames/s "
                f"(before {before[runtime][batch]:.2f}, after {after[runtime][batch]:.2f})"
            )
    given = [f"{k}={os.environ[k]}" for k in TUNING if k in os.environ]
    print(
        f"pipeline worker: {pipeline_runtime}, MISIS_MAX_BATCH={max_batch}; "
        + (", ".join(given) if given else "other settings at their defaults")
    )
    print(
        f"(b) one scenario, whole system ({pipeline_runtime}):   {b:7.2f} frames/s "
        f"(model p50 {statistics.median(r['inference_ms'] for r in one):.0f} ms a call)"
    )
    print(f"    CPU a frame: {cpu_b}")
    print(
        f"(c) four scenarios, whole system ({pipeline_runtime}): {c:7.2f} frames/s, all four "
        f"together (model p50 {statistics.median(r['inference_ms'] for r in four):.0f} ms a call)"
    )
    print(f"    CPU a frame: {cpu_c}")
    p50, p50_model = statistics.median(seen), statistics.median(model_s)

    def latency_line(label: str, seen: list[float], model: list[float]) -> str:
        return (
            f"latency read -> visible over API, {label}: p50 {statistics.median(seen) * 1000:6.1f}"
            f" ms, p95 {pct(seen, 95) * 1000:6.1f} ms, p99 {pct(seen, 99) * 1000:6.1f} ms; model"
            f" time p50 {statistics.median(model) * 1000:6.1f} ms (client polls every "
            f"{args.poll * 1000:.0f} ms); {len(seen) / args.latency_seconds:.2f} frames/s analysed"
        )

    print(latency_line("no wait for a fresher frame", stale, stale_model))
    print(latency_line("waiting for fresher frames", seen, model_s))
    fastest_1 = max(runtimes, key=lambda r: a[r][1])
    best_r, best_b = max(
        ((r, k) for r in runtimes for k in batches), key=lambda rk: a[rk[0]][rk[1]]
    )
    print(f"fastest at batch 1: {fastest_1}; best overall: {best_r} at batch {best_b}")

    def reference(runtime: str, batch: int, phase: int) -> tuple[float, str]:
        """Direct frames/s to hold pipeline phase (b) (0) or (c) (1) against: measured just
        before and after it when it is the pipeline's runtime, else the whole run's mean."""
        if runtime == pipeline_runtime and near[0]:
            pair = (near[phase][batch], near[phase + 1][batch])
            return sum(pair) / 2, "just before / after: " + " / ".join(f"{x:.2f}" for x in pair)
        return a[runtime][batch], "the run's mean"

    ref_b, how_b = reference(fastest_1, 1, 0)
    print(f"(b) / (a) {fastest_1} batch 1        = {b / ref_b:.3f}   (target >= 0.9; {how_b})")
    if "torch" in a:
        print(f"(b) / (a) torch batch 1           = {b / a['torch'][1]:.3f}   (target >= 1.15)")
    best_near = max(batches, key=lambda k: reference(best_r, k, 1)[0])
    ref_c, how_c = reference(best_r, best_near, 1)
    print(
        f"(c) / (a) {best_r} batch {best_near} (best) = {c / ref_c:.3f}   (target >= 0.9; {how_c})"
    )
    off = (statistics.median(stale) - statistics.median(stale_model)) * 1000
    print(
        f"latency p50 - model p50 = {(p50 - p50_model) * 1000:.1f} ms   (target < 50 ms; "
        f"{off:.1f} ms with no wait for a fresher frame)"
    )
    print(f"# load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
