"""What one fenced publish of a runner costs, one run, in this process.

    .venv/bin/python -m bench.publish [--calls 300] [--rounds 3]

Calls ``runner_publish`` for one active scenario the way a 1-fps runner does (a heartbeat
with one prediction row, its frontier one frame further each time), with and without the
analytics/sampler state blob, and prints per call: wall time (p50 over calls, range over
rounds; mostly PostgreSQL's commit), this process's CPU (the runner's side) and SQL
statements. The blobs: a 1-fps scenario's without analytics (~60 bytes), and one with 2
zones and 2 lines after 20 tracked frames. Light (one thread, a few seconds of CPU); uses its
own database, misis_bench_publish, so that it can run beside a bench that holds misis_bench.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import numpy as np

DATABASE = "misis_bench_publish"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    os.environ.setdefault("DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{DATABASE}")
    from bench.common import fresh_database

    fresh_database(DATABASE)
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from runner.analytics_stage import AnalyticsStage
    from scenarios.models import Scenario, Status
    from scenarios.services.runner_writes import PredictionRow, runner_publish

    user = get_user_model().objects.create_user(username="bench")
    # Shapes on the right half; the tracked box walks on the left, so no event (no snapshot).
    shapes = {
        "zones": [
            {"name": f"z{i}", "polygon": [[0.6, 0], [1, 0], [1, 0.5 + i / 10], [0.6, 0.5]]}
            for i in range(2)
        ],
        "lines": [
            {"name": f"l{i}", "points": [[0.8 + i / 10, 0], [0.8 + i / 10, 1]]} for i in range(2)
        ],
    }
    image = np.zeros((120, 160, 3), np.uint8)

    def blob(params: dict[str, Any]) -> bytes:
        stage = AnalyticsStage(
            scenario_id="bench", params=params, state=None, events_total=0, fps=1.0
        )
        for i in range(20):
            box = {
                "label": "person",
                "class_id": 0,
                "confidence": 0.9,
                "x1": 10 + i,
                "y1": 20,
                "x2": 40 + i,
                "y2": 100,
            }
            stage.process(
                frame_index=i, pts=float(i), captured_at=timezone.now(), image=image, boxes=[box]
            )
        return stage.dump(20.0)

    variants = {"no blob": None, "1-fps blob": blob({}), "zones blob": blob(shapes)}
    print(
        f"# runner_publish, {args.calls} calls a round, {args.rounds} rounds; blob sizes: "
        + ", ".join(f"{k} {len(v)} B" for k, v in variants.items() if v is not None)
    )

    statements = 0

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        nonlocal statements
        statements += 1
        return execute(sql, params, many, context)

    results: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    per_call: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, state in variants.items():
            s = Scenario.objects.create(owner=user, source="x.mp4", status=Status.ACTIVE)
            times = []
            statements = 0
            cpu0 = time.process_time()
            with connection.execute_wrapper(count):
                for i in range(args.calls):
                    row = PredictionRow(
                        frame_index=i,
                        pts=float(i),
                        captured_at=timezone.now(),
                        width=160,
                        height=120,
                        inference_ms=1.0,
                        boxes=[],
                    )
                    t0 = time.perf_counter()
                    runner_publish(
                        scenario_id=s.pk,
                        epoch=1,
                        rows=[row],
                        next_frame=i + 1,
                        fps=1.0,
                        analytics_state=state,
                        counts={} if state else None,
                    )
                    times.append(time.perf_counter() - t0)
            cpu[name].append(1000 * (time.process_time() - cpu0) / args.calls)
            results[name].append(1000 * statistics.median(times))
            per_call[name] = statements / args.calls
    for name, medians in results.items():
        print(
            f"{name:>10}: {min(medians):.2f} - {max(medians):.2f} ms a call (p50), "
            f"this process's CPU {min(cpu[name]):.2f} - {max(cpu[name]):.2f} ms a call, "
            f"{per_call[name]:.0f} SQL statements a call (+ COMMIT)"
        )


if __name__ == "__main__":
    main()
