"""The stack's own CPU: what every part costs a second while the detector does no work at all.

    .venv/bin/python -m bench.overhead [--scenarios 0,4] [--delay-ms 880] [--seconds 30]

On a node where the detector shares the cores, every millisecond the rest of the stack spends
is taken from the model (bench/detection.py's (c)). The detector here is the mock, sleeping
``--delay-ms`` a call of up to 4 frames (880 ms: about the default weights' speed on a 2-core
CPU without AVX-512), so what is measured is everything but the model: the runners, beat and
the orchestrator, Redis, PostgreSQL, the API, the inference worker's batching. For each count of
file scenarios (0: the idle stack) it prints the CPU of each part in ms a second over
``--seconds``, the analysed frames a second, and the Redis commands a second. Uses its own
database (misis_bench) and Redis database 13; starts and stops its own stack.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Api, bench_token, fresh_database, wait
from bench.scale_measure import stack_meter

PORT = 8767
api = Api(PORT)


def frames_processed(token: str, ids: list[str]) -> int:
    return sum(int(api.call("GET", f"/scenario/{s}/", token)["frames_processed"]) for s in ids)


def redis_calls(seconds: float) -> str:
    """The commands a second since the last reset, the most frequent first."""
    from misis.redis_client import get_redis

    stats: dict[str, Any] = get_redis().info("commandstats")
    top = sorted(stats.items(), key=lambda kv: -kv[1]["calls"])[:6]
    return ", ".join(f"{k.removeprefix('cmdstat_')} {v['calls'] / seconds:.0f}" for k, v in top)


def measure(stack: Any, token: str, count: int, seconds: float, warmup: float) -> None:
    from misis.redis_client import get_redis

    ids = [
        api.call("POST", "/scenario/", token, {"source": "people.mp4", "name": f"o{i}"})["id"]
        for i in range(count)
    ]
    time.sleep(warmup)  # the scenarios started and their first batches on the way
    get_redis().config_resetstat()
    before = frames_processed(token, ids)
    meter = stack_meter(stack)
    meter.start()
    t0 = time.monotonic()
    time.sleep(seconds)
    used = meter.stop()
    elapsed = time.monotonic() - t0
    fps = (frames_processed(token, ids) - before) / elapsed
    parts = sorted((k for k in used if k != "system"), key=lambda k: -used[k])
    # CpuMeter gives % of one core: x 10 is ms a second.
    print(
        f"{count} scenarios, {fps:.2f} analysed frames/s: CPU ms a second: "
        + ", ".join(f"{k} {used[k] * 10:.1f}" for k in parts)
        + f" (all {used['system'] * 10:.1f}; 'other' is every process outside the stack)"
    )
    print(f"    Redis commands a second: {redis_calls(elapsed)}")
    for sid in ids:
        api.call("DELETE", f"/scenario/{sid}/", token)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenarios", default="0,4", help="comma-separated counts")
    parser.add_argument("--delay-ms", type=int, default=880, help="the mock detector's, a call")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    args = parser.parse_args()
    counts = [int(x) for x in args.scenarios.split(",") if x]

    fresh_database()
    from runner.samples import write_people_video
    from testbed.stack import Stack

    work = Path(tempfile.mkdtemp(prefix="misis-bench-"))
    # Long enough that no scenario ends within a step.
    write_people_video(work / "videos" / "people.mp4", frames=600)
    stack = Stack(
        work,
        work / "videos",
        api_port=PORT,
        MISIS_MOCK_DELAY_MS=str(args.delay_ms),
        MISIS_MAX_BATCH="4",
    )
    print(
        f"# overhead bench: mock detector sleeping {args.delay_ms} ms a call of up to 4 frames;"
        f" {args.seconds:.0f} s a step"
    )
    stack.start_all()
    try:
        wait(api.health, 60)
        token = bench_token()
        for count in counts:
            measure(stack, token, count, args.seconds, args.warmup if count else 2.0)
    finally:
        stack.stop_all()


if __name__ == "__main__":
    main()
