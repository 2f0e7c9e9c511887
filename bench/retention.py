"""Retention on the partitioned predictions table: bytes per row on disk, the page p99 of
GET /prediction/<id>/?after= on a 10-million-row table, and the sustained insert rate through
the runner's real write (runner_publish) with and without the retention sweep dropping
partitions at the same time.

    flock /tmp/bench.lock .venv/bin/python -m bench.retention [--rows 10000000] [--days 8]
        [--scenarios 10] [--pages 1000] [--seconds 15] [--writers 4]

Its own database (misis_retention_bench, dropped and made again). The rows are generated in
the database (INSERT ... SELECT generate_series), spread evenly over ``--days`` day partitions
and ``--scenarios`` scenarios, frame_index rising with time as a runner writes them, each with
two person boxes. Pages go through the whole Django stack in-process (URL, token auth, view,
selector, JSON; no HTTP server). Prints the load average before and after: this machine is
shared.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

os.environ["DJANGO_SETTINGS_MODULE"] = "misis.settings.test"
os.environ["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/misis_retention_bench"
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/13")

BOX = {"label": "person", "class_id": 0, "confidence": 0.87}
BOXES = [
    {**BOX, "x1": 101.5, "y1": 220.25, "x2": 180.0, "y2": 410.75},
    {**BOX, "x1": 640.0, "y1": 200.5, "x2": 702.25, "y2": 380.0},
]


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def setup() -> None:
    for sql in (
        "DROP DATABASE IF EXISTS misis_retention_bench",
        "CREATE DATABASE misis_retention_bench",
    ):
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", sql], check=True)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def fill(rows: int, days: int, scenarios: list[Any]) -> float:
    """``rows`` predictions over the ``days`` day partitions before today; seconds taken."""
    from django.db import connection

    from scenarios.retention import PREDICTIONS, create_partitions

    today = datetime.now(UTC).date()
    first = today - timedelta(days=days)
    create_partitions(PREDICTIONS, [first + timedelta(days=i) for i in range(days)])
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    each = rows // len(scenarios)
    step = days * 86400 / each  # seconds between two frames of one scenario
    boxes = json.dumps(BOXES)
    began = time.perf_counter()
    with connection.cursor() as cursor:
        for scenario in scenarios:
            cursor.execute(
                "INSERT INTO scenarios_prediction (scenario_id, frame_index, epoch, pts,"
                " captured_at, width, height, inference_ms, boxes, created_at)"
                " SELECT %s, g, 1, g * %s, t, 1280, 720, 12.5, %s::jsonb, t FROM ("
                "  SELECT g, %s::timestamptz + g * %s * interval '1 second' AS t"
                "  FROM generate_series(0, %s) g) x",
                [scenario.pk, step, boxes, start, step, each - 1],
            )
        cursor.execute("ANALYZE scenarios_prediction")
    return time.perf_counter() - began


def disk() -> tuple[int, int, int, int]:
    """(total bytes, heap bytes, index bytes, partitions) of the predictions table."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT sum(pg_total_relation_size(relid)), sum(pg_table_size(relid)),"
            " sum(pg_indexes_size(relid)), count(*) FROM pg_partition_tree('scenarios_prediction')"
            " WHERE isleaf"
        )
        total, heap, index, parts = cursor.fetchone()
    return int(total), int(heap), int(index), int(parts)


def pages(scenarios: list[Any], token: str, rows_each: int, count: int) -> list[float]:
    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Token {token}")
    rng = random.Random(1)
    times = []
    for _ in range(count):
        scenario = rng.choice(scenarios)
        url = f"/prediction/{scenario.pk}/?after={rng.randrange(rows_each)}&limit=100"
        began = time.perf_counter()
        answer = client.get(url)
        times.append((time.perf_counter() - began) * 1000)
        assert answer.status_code == 200 and len(answer.json()["results"]) > 0, answer.content
    return times


def plan(scenario: Any, after: int) -> list[str]:
    """The page query's plan (the selector's SQL, EXPLAIN ANALYZE)."""
    from django.db import connection

    from scenarios.selectors import prediction_page_query

    sql, params = prediction_page_query(
        user=scenario.owner, scenario_id=scenario.pk, after=after, limit=100
    )
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, COSTS OFF) " + sql, params)
        return [r[0] for r in cursor.fetchall()]


def publish_rate(writers: int, seconds: float, sweeping: bool) -> dict[str, Any]:
    """``writers`` threads publishing 50-frame batches through runner_publish, each for its
    own active scenario, for ``seconds``; with ``sweeping``, a thread meanwhile fills an old
    day partition with 50k rows and runs the retention sweep that drops it, again and again."""
    from django.contrib.auth import get_user_model
    from django.db import connection, connections
    from django.utils import timezone

    from scenarios.models import Prediction, Scenario
    from scenarios.retention import PREDICTIONS, create_partitions, sweep
    from scenarios.services.runner_writes import PredictionRow, runner_publish

    owner = get_user_model().objects.get(username="bench")
    ids = [
        Scenario.objects.create(owner=owner, source="x.mp4", status="active").pk
        for _ in range(writers)
    ]
    stop = threading.Event()
    latencies: list[float] = []
    errors: list[str] = []
    drops: list[float] = []
    lock = threading.Lock()

    def write(scenario_id: Any) -> None:
        frame = 0
        mine = []
        try:
            while not stop.is_set():
                now = timezone.now()
                rows = [
                    PredictionRow(frame + i, (frame + i) / 5, now, 1280, 720, 12.5, BOXES)
                    for i in range(50)
                ]
                began = time.perf_counter()
                runner_publish(scenario_id=scenario_id, epoch=1, rows=rows, next_frame=frame + 50)
                mine.append(time.perf_counter() - began)
                frame += 50
        except Exception as exc:
            errors.append(repr(exc))
        finally:
            connections.close_all()
        with lock:
            latencies.extend(mine)

    def retention() -> None:
        day = datetime.now(UTC).date() - timedelta(days=400)
        try:
            while not stop.is_set():
                create_partitions(PREDICTIONS, [day])
                with connection.cursor() as cursor:
                    cursor.execute(
                        "INSERT INTO scenarios_prediction (scenario_id, frame_index, epoch, pts,"
                        " captured_at, width, height, inference_ms, boxes, created_at)"
                        " SELECT %s, 10000000000 + g, 1, 0, now(), 1, 1, 0, '[]', %s"
                        " FROM generate_series(1, 50000) g",
                        [ids[0], datetime(day.year, day.month, day.day, 1, tzinfo=UTC)],
                    )
                began = time.perf_counter()
                if sweep()["dropped"] != 1:
                    raise RuntimeError(f"partition {day} not dropped")
                drops.append(time.perf_counter() - began)
                day += timedelta(days=1)
        except Exception as exc:
            errors.append(f"retention: {exc!r}")
        finally:
            connections.close_all()

    before = Prediction.objects.filter(scenario_id__in=ids).count()
    threads = [threading.Thread(target=write, args=(i,)) for i in ids]
    if sweeping:
        threads.append(threading.Thread(target=retention))
    began = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    stored = Prediction.objects.filter(scenario_id__in=ids, frame_index__lt=10**10).count()
    published = 50 * len(latencies)
    return {
        "rows_per_s": published / elapsed,
        "published": published,
        "stored": stored - before,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else 0.0,
        "p99_ms": pct(latencies, 99) * 1000 if latencies else 0.0,
        "max_ms": max(latencies, default=0.0) * 1000,
        "drops": len(drops),
        "drop_ms_max": max(drops, default=0.0) * 1000,
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=8)
    parser.add_argument("--scenarios", type=int, default=10)
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument(
        "--reuse", action="store_true", help="keep the rows of the last run (pages, rates again)"
    )
    args = parser.parse_args()

    print(f"load average before: {loadavg()} ({os.cpu_count()} cores)")
    # The generated days are all within the retention; the sweep drops only its own old day.
    os.environ["MISIS_RETENTION"] = f"{args.days + 2}d"
    if args.reuse:
        import django

        django.setup()
    else:
        setup()
    logging.getLogger("scenarios.retention").setLevel(logging.WARNING)
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from bench.common import bench_token
    from scenarios.models import Scenario

    if args.reuse:
        token = str(Token.objects.get(user__username="bench").key)
        scenarios = list(Scenario.objects.filter(status="inactive"))
        args.scenarios = len(scenarios)
    else:
        token = bench_token()
        owner = get_user_model().objects.get(username="bench")
        scenarios = [
            Scenario.objects.create(owner=owner, source="x.mp4", status="inactive")
            for _ in range(args.scenarios)
        ]
        seconds = fill(args.rows, args.days, scenarios)
    total, heap, index, parts = disk()
    print(f"\n# {args.rows} rows, {args.scenarios} scenarios, over {args.days} day partitions")
    if not args.reuse:
        rate = args.rows / seconds
        print(f"generated in {seconds:.0f} s ({rate:,.0f} rows/s, INSERT ... SELECT)")
    print(
        f"on disk: {total / args.rows:.0f} bytes/row (heap+toast {heap / args.rows:.0f},"
        f" indexes {index / args.rows:.0f}) in {parts} partitions, {total / 2**30:.2f} GiB"
    )

    each = args.rows // args.scenarios
    lines = plan(scenarios[0], each // 2)
    scans = sum("Index Scan" in line for line in lines)
    print(f"\n# the page query's plan: {scans} index scans (one per partition), merged")
    print("\n".join([*lines[:6], "...", *lines[-3:]]))

    pages(scenarios, token, each, 50)  # warm up
    times = pages(scenarios, token, each, args.pages)
    print(
        f"\n# GET /prediction/<id>/?after=<random>&limit=100, {args.pages} pages, in-process:"
        f" p50 {statistics.median(times):.1f} ms, p99 {pct(times, 99):.1f} ms,"
        f" max {max(times):.1f} ms"
    )

    print(f"\n# runner_publish, {args.writers} writers x 50-row batches, {args.seconds:.0f} s each")
    for sweeping in (False, True):
        r = publish_rate(args.writers, args.seconds, sweeping)
        label = "with the sweep dropping partitions" if sweeping else "no sweep"
        print(
            f"{label}: {r['rows_per_s']:,.0f} rows/s; publish p50 {r['p50_ms']:.0f} ms,"
            f" p99 {r['p99_ms']:.0f} ms, max {r['max_ms']:.0f} ms; published {r['published']},"
            f" stored {r['stored']}; partitions dropped {r['drops']}"
            f" (sweep max {r['drop_ms_max']:.0f} ms); errors {r['errors'] or 'none'}"
        )
    print(f"\nload average after: {loadavg()}")


if __name__ == "__main__":
    main()
