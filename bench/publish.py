"""What one fenced publish of a runner costs, one run, in this process.

    .venv/bin/python -m bench.publish [--calls 300] [--rounds 3]
    .venv/bin/python -m bench.publish --threads 250 [--seconds 10] [--rounds 3]

Calls ``runner_publish`` for one active scenario the way a 1-fps runner does (a heartbeat
with one prediction row, its frontier one frame further each time, the connection handed back
to the pool after each), beside the publish as it was before (lock the row, insert, save the
row), with and without the analytics/sampler state blob, and prints per call: this process's
CPU (the runner's side), wall time (p50 over calls, range over rounds; mostly PostgreSQL's
commit) and SQL statements. The blobs: a 1-fps scenario's without analytics (~60 bytes),
and one with 2 zones and 2 lines after 20 tracked frames. Light (one thread, a few seconds of
CPU); uses its own database, misis_bench_publish, so it can run beside one on misis_bench.

``--threads N``: N threads, each one scenario's runner, publish one row at a time as fast as
they can for ``--seconds``, once with a transaction a publish (each thread its own pooled
connection, as before runner/publish_queue.py) and once through the process's publish queue,
alternately for ``--rounds``; prints publishes a second, this process's CPU and PostgreSQL's
transactions per publish, and the wall time of a publish (p50/p99).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import numpy as np
from django.db import transaction
from django.utils import timezone

DATABASE = "misis_bench_publish"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    os.environ.setdefault("DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{DATABASE}")
    from bench.common import fresh_database

    fresh_database(DATABASE)
    from django.contrib.auth import get_user_model
    from django.db import close_old_connections, connection

    from runner.analytics_stage import AnalyticsStage
    from scenarios.models import Scenario, Status
    from scenarios.services.runner_writes import PredictionRow, runner_publish

    user = get_user_model().objects.create_user(username="bench")
    if args.threads:
        concurrent(user, args.threads, args.seconds, args.rounds)
        return
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

    blobs = {"no blob": None, "1-fps blob": blob({}), "zones blob": blob(shapes)}
    writers = {"UPDATE RETURNING": runner_publish, "lock + save": lock_and_save}
    print(
        f"# a publish of one row, {args.calls} calls a round, {args.rounds} rounds; "
        "'lock + save' is the publish before it became one UPDATE (kept in this bench); "
        "blob sizes: " + ", ".join(f"{k} {len(v)} B" for k, v in blobs.items() if v is not None)
    )

    statements = 0

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        nonlocal statements
        statements += 1
        return execute(sql, params, many, context)

    variants = [(w, b) for b in blobs for w in writers]
    results: dict[tuple[str, str], list[float]] = {v: [] for v in variants}
    cpu: dict[tuple[str, str], list[float]] = {v: [] for v in variants}
    per_call: dict[tuple[str, str], float] = {}
    for _ in range(args.rounds):
        for writer, blob_name in variants:
            publish, state = writers[writer], blobs[blob_name]
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
                    publish(
                        scenario_id=s.pk,
                        epoch=1,
                        rows=[row],
                        next_frame=i + 1,
                        fps=1.0,
                        analytics_state=state,
                        counts={} if state else None,
                    )
                    close_old_connections()  # as the runner does: back to the pool
                    times.append(time.perf_counter() - t0)
            cpu[writer, blob_name].append(1000 * (time.process_time() - cpu0) / args.calls)
            results[writer, blob_name].append(1000 * statistics.median(times))
            per_call[writer, blob_name] = statements / args.calls
    for (writer, blob_name), medians in results.items():
        c = cpu[writer, blob_name]
        print(
            f"{writer:>16}, {blob_name:>10}: CPU {min(c):.2f} - {max(c):.2f} ms a call, "
            f"wall p50 {min(medians):.1f} - {max(medians):.1f} ms, "
            f"{per_call[writer, blob_name]:.0f} SQL statements (+ COMMIT)"
        )


def concurrent(user: Any, threads: int, seconds: float, rounds: int) -> None:
    """Many scenarios publishing at once: a transaction each, or through the publish queue."""
    import threading

    import psutil
    from django.db import close_old_connections, connection

    from bench.common import pct
    from misis.lease import Lease
    from runner.publish_queue import PublishQueue
    from scenarios.models import Scenario, Status
    from scenarios.services.runner_writes import PublishRequest, runner_publish

    def commits() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database"
                " WHERE datname = current_database()"
            )
            (n,) = cursor.fetchone()
        close_old_connections()
        return int(n)

    def alone(request: PublishRequest) -> str:
        try:
            return runner_publish(**vars(request))
        finally:
            close_old_connections()  # as the runner did: back to the pool

    print(
        f"# {threads} threads, one scenario each, publishing one row at a time for "
        f"{seconds:g} s; {rounds} rounds; load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    me = psutil.Process()
    lines: dict[str, list[str]] = {"a transaction each": [], "publish queue": []}
    for _ in range(rounds):
        for name in lines:
            queue = PublishQueue()
            scenarios = [
                Scenario.objects.create(owner=user, source="x.mp4", status=Status.ACTIVE)
                for _ in range(threads)
            ]
            leases = {str(s.pk): Lease.acquire(s.pk, s.epoch) for s in scenarios}

            def queued(
                request: PublishRequest,
                queue: PublishQueue = queue,
                leases: dict[str, Lease | None] = leases,
            ) -> str:
                """Through the queue, whose writer renews the batch's leases (the runner's
                renewal, which the transaction-each line leaves out)."""
                held = leases[str(request.scenario_id)]
                assert held is not None
                return queue.publish(request, held)

            write = alone if name == "a transaction each" else queued
            close_old_connections()
            stop_at = time.monotonic() + seconds
            walls: list[list[float]] = [[] for _ in range(threads)]

            tx0, cpu0, t0 = commits(), me.cpu_times(), time.monotonic()
            workers = [
                threading.Thread(target=publishing, args=(write, s.pk, stop_at, walls[i]))
                for i, s in enumerate(scenarios)
            ]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            elapsed, cpu1, tx = time.monotonic() - t0, me.cpu_times(), commits() - tx0
            done = [w for ws in walls for w in ws]
            cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / len(done) * 1000
            lines[name].append(
                f"{len(done) / elapsed:6.0f} publishes/s, CPU {cpu:.2f} ms and "
                f"{tx / len(done):.2f} transactions a publish, wall p50 "
                f"{pct(done, 50) * 1000:.1f} ms p99 {pct(done, 99) * 1000:.1f} ms"
            )
    for name, results in lines.items():
        for line in results:
            print(f"{name:>18}: {line}")


def publishing(write: Any, scenario_id: Any, stop_at: float, walls: list[float]) -> None:
    """One scenario's runner: publish a row at a time until ``stop_at``; each one's wall time."""
    from scenarios.services.runner_writes import PredictionRow, PublishRequest

    frame = 0
    while time.monotonic() < stop_at:
        row = PredictionRow(frame, float(frame), timezone.now(), 160, 120, 1.0, [])
        t0 = time.perf_counter()
        write(PublishRequest(scenario_id, 1, [row], next_frame=frame + 1, fps=1.0))
        walls.append(time.perf_counter() - t0)
        frame += 1


@transaction.atomic
def lock_and_save(
    *,
    scenario_id: Any,
    epoch: int,
    rows: list[Any],
    next_frame: int,
    fps: float,
    analytics_state: bytes | None,
    counts: dict[str, Any] | None,
) -> str:
    """The publish as it was: lock the row (fence), insert, change the row and save it all."""
    from misis.lease import LeaseLost
    from scenarios.models import PREDICTION_FIELDS, Prediction, Scenario
    from scenarios.services.transitions import next_deadline

    scenario = Scenario.objects.select_for_update().filter(pk=scenario_id, epoch=epoch).first()
    if scenario is None:
        raise LeaseLost(f"scenario {scenario_id}: epoch {epoch} is fenced off")
    created = Prediction.objects.bulk_create(
        [
            Prediction(
                scenario_id=scenario.pk,
                epoch=epoch,
                **{name: getattr(r, name) for name in PREDICTION_FIELDS},
            )
            for r in rows
        ]
    )
    scenario.frames_processed += len(created)
    scenario.failed_restarts = 0
    if analytics_state is not None and next_frame >= scenario.next_frame:
        scenario.analytics_state = analytics_state
        if counts is not None:
            scenario.counts = counts
    scenario.next_frame = max(scenario.next_frame, next_frame)
    scenario.fps = round(fps, 2)
    scenario.heartbeat_at = timezone.now()
    scenario.deadline_at = next_deadline()
    scenario.save()
    return str(scenario.status)


if __name__ == "__main__":
    main()
