"""Control-plane figures on this machine, one run, real processes over loopback HTTP.

    .venv/bin/python -m bench.control_plane [--runs 20] [--kills 5] [--rows 1000000]

Prints POST-to-active and stop-to-inactive latency (p50/p95), recovery time after kill -9 of
the runner's worker process, and GET /prediction/ latency (p50/p99) on a table of --rows rows.
Uses its own database (misis_bench) and Redis database 13; starts and stops its own stack.
"""

from __future__ import annotations

import argparse
import random
import signal
import statistics
import time

from bench.common import (
    Api,
    bench_token,
    fresh_database,
    insert_predictions,
    pct,
    start_stack,
    wait,
)

PORT = 8765
api = Api(PORT)
call = api.call


def status(sid: str, token: str) -> str:
    return str(call("GET", f"/scenario/{sid}/", token)["status"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()

    fresh_database()

    token = bench_token()
    _, stack = start_stack(api, video_frames=200)
    try:
        print(f"# control-plane bench: {args.runs} start/stop runs, {args.kills} kills")
        starts, stops = [], []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            sid = call(
                "POST", "/scenario/", token, {"source": "loop.mp4", "params": {"loop": True}}
            )["id"]
            wait(lambda sid=sid: status(sid, token) == "active", 30, 0.01)
            starts.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            call("POST", f"/scenario/{sid}/", token, {"status": "init_shutdown"})
            wait(lambda sid=sid: status(sid, token) == "inactive", 30, 0.01)
            stops.append(time.perf_counter() - t0)
        print(
            f"POST -> active     p50 {pct(starts, 50) * 1000:7.1f} ms   "
            f"p95 {pct(starts, 95) * 1000:7.1f} ms"
        )
        print(
            f"stop -> inactive   p50 {pct(stops, 50) * 1000:7.1f} ms   "
            f"p95 {pct(stops, 95) * 1000:7.1f} ms"
        )

        recoveries = []
        for _ in range(args.kills):
            stack.ensure_running()
            sid = call(
                "POST", "/scenario/", token, {"source": "loop.mp4", "params": {"loop": True}}
            )["id"]
            first = wait(
                lambda sid=sid: (
                    (d := call("GET", f"/scenario/{sid}/", token))["status"] == "active" and d
                ),
                30,
            )
            time.sleep(1.0)
            stack.signal(stack.name_of(first["runner"]), signal.SIGKILL)
            t0 = time.perf_counter()
            wait(
                lambda sid=sid, old=first["runner"]: (
                    (d := call("GET", f"/scenario/{sid}/", token))["status"] == "active"
                    and d["runner"] not in (None, old)
                ),
                30,
                0.05,
            )
            recoveries.append(time.perf_counter() - t0)
            call("POST", f"/scenario/{sid}/", token, {"status": "init_shutdown"})
        print(
            f"kill -9 recovery   p50 {statistics.median(recoveries):7.2f} s    "
            f"max {max(recoveries):7.2f} s   (heartbeat timeout 5 s)"
        )

        sid = call("POST", "/scenario/", token, {"source": "missing.mp4"})["id"]
        wait(lambda: call("GET", f"/scenario/{sid}/", token)["status"] == "inactive", 30, 0.2)
        seconds = insert_predictions(sid, args.rows)
        print(f"inserted {args.rows} prediction rows in {seconds:.1f} s")
        for limit in (100, 1000):
            times = []
            for _ in range(200):
                after = random.randrange(0, args.rows)
                t0 = time.perf_counter()
                page = call("GET", f"/prediction/{sid}/?after={after}&limit={limit}", token)
                times.append(time.perf_counter() - t0)
                assert page["results"] == [] or page["results"][0]["frame_index"] == after + 1
            print(
                f"GET /prediction/ limit={limit:<4}  p50 {pct(times, 50) * 1000:6.1f} ms   "
                f"p99 {pct(times, 99) * 1000:6.1f} ms   ({args.rows} rows, 200 random cursors)"
            )
    finally:
        stack.stop_all()


if __name__ == "__main__":
    main()
