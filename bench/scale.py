"""Scale figures on this machine, one run: how many scenarios the runners hold, and the API under
concurrent load.

    .venv/bin/python -m bench.scale [--steps 100,250,500] [--seconds 20]
                                    [--runner-concurrency 256] [--db-pool-max 8] [--skip-api]
                                    [--profile]

1. Scenario scale: mock detector (no delay), every scenario on a looping 160x120 file at 1 fps
   (about one analysed frame a second each), two runner workers with --runner-concurrency
   threads each. For each step N (cumulative) it waits until N scenarios are active, then for
   --seconds samples every second, straight from the database, the heartbeat lag of every
   running scenario, and reports its p50/p99/max, the share of samples older than 2 s, the
   watchdog's restarts during the step, analysed frames per second against N, CPU and RSS of
   the runner processes (RSS and threads per scenario against the idle runners), and the
   database connections in use; and whether the step held. It stops at the first step whose
   heartbeats miss (max lag over MISIS_HEARTBEAT_TIMEOUT, a restart, a scenario lost, or not
   all N active in time).
2. The API under load from this process (8 keep-alive clients on loopback, bounded in time and
   count) with no scenario running: POST /scenario/ (each created scenario is stopped after,
   which is measured too) and GET /prediction/<id>/?after=<random>&limit=100 on ~100k rows.

Uses its own database (misis_bench) and Redis database 13; starts and stops its own stack.
What it reads is in bench/scale_measure.py, each step's report in bench/scale_report.py, the API
load (part 2) in bench/scale_api.py.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil

from bench.common import fresh_database, wait
from bench.scale_api import PORT, api, api_load, call
from bench.scale_measure import (
    RUNNING,
    count_status,
    db_commits,
    db_connections,
    heartbeat_lags,
    log_counts,
    redis_commands,
    sql,
    stack_meter,
    totals,
    wait_idle,
)
from bench.scale_profile import Recording
from bench.scale_report import Step, failed, print_step

TARGET_SCENARIOS = 500  # at 1 fps, mock detector, on this machine's 2 cores
TARGET_MB = 8.0  # runner RSS per scenario


def create_scenarios(count: int, token: str, source: str) -> list[str]:
    body = {"source": source, "params": {"loop": True}}
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(call, "POST", "/scenario/", token, body) for _ in range(count)]
        return [f.result()["id"] for f in futures]


def scale(args: argparse.Namespace, stack: Any, token: str, timeout: float) -> list[Step]:
    runners = [psutil.Process(stack.pid(n)) for n in ("runner1", "runner2")]

    def runner_procs() -> list[psutil.Process]:
        return [q for p in runners for q in (p, *p.children(recursive=True))]

    meter = stack_meter(stack)

    def rss() -> int:
        return sum(p.memory_info().rss for p in runner_procs())

    def threads() -> int:
        return sum(p.num_threads() for p in runner_procs())

    time.sleep(2.0)
    rss0, threads0 = rss(), threads()
    print(
        f"idle runners: RSS {rss0 / 2**20:.0f} MB, {threads0} threads, "
        f"{db_connections()} DB connections (MISIS_DB_POOL_MAX={args.db_pool_max})",
        flush=True,
    )
    steps: list[Step] = []
    created = 0
    for n in args.steps:
        step = Step(n)
        steps.append(step)
        _, restarts0, dropped0, inactive0 = totals()
        marks0 = log_counts(stack, ["runner1", "runner2", "orchestrator", "api", "inference"])
        t0 = time.monotonic()
        create_scenarios(n - created, token, "loop1.mp4")
        created = n
        deadline = time.monotonic() + max(60.0, n * 0.3)
        while time.monotonic() < deadline:
            step.active = count_status("active")
            if step.active >= n:
                break
            time.sleep(0.2)
        step.ramp_s = time.monotonic() - t0
        if step.active < n:
            step.note = f"only {step.active}/{n} active after {step.ramp_s:.0f} s"

        frames1 = totals()[0]
        tx0, ops0 = db_commits(), redis_commands()
        meter.start()
        recording = (
            Recording(runners[0].pid, args.seconds, args.work / f"profile-{n}.txt")
            if args.profile
            else None
        )
        m0 = time.monotonic()
        step.min_running = n
        end = m0 + args.seconds
        tick = m0
        while tick < end:
            step.lags.extend(heartbeat_lags())
            step.min_running = min(step.min_running, count_status(*RUNNING))
            step.db_conns_max = max(step.db_conns_max, db_connections())
            tick += 1.0
            time.sleep(max(0.0, tick - time.monotonic()))
        frames2, restarts2, dropped2, inactive2 = totals()
        step.cpu = meter.stop()
        elapsed = time.monotonic() - m0
        step.db_tx = (db_commits() - tx0) / elapsed
        step.redis_ops = (redis_commands() - ops0) / elapsed
        step.fps = (frames2 - frames1) / elapsed
        step.restarts = restarts2 - restarts0
        step.dropped = dropped2 - dropped0
        step.lost = inactive2 - inactive0
        step.rss_mb = rss() / 2**20
        step.mb_per = (step.rss_mb - rss0 / 2**20) / n
        step.threads = threads()
        step.threads_per = (step.threads - threads0) / n
        per_runner = sql(
            "SELECT runner, count(*) FROM scenarios_scenario WHERE status = ANY(%s)"
            " GROUP BY runner ORDER BY runner",
            [list(RUNNING)],
        )
        step.split = "/".join(str(c) for _, c in per_runner)
        marks1 = log_counts(stack, ["runner1", "runner2", "orchestrator", "api", "inference"])
        step.log_marks = {k: marks1[k] - marks0[k] for k in marks1 if marks1[k] - marks0[k]}
        step.held = not failed(step, timeout)
        print_step(step, first=len(steps) == 1)
        if recording is not None:
            recording.report()
        if not step.held:
            break
    return steps


def stop_all_scenarios(token: str, timeout: float = 90.0) -> None:
    ids = [str(r[0]) for r in sql("SELECT id FROM scenarios_scenario WHERE status <> 'inactive'")]
    body = {"status": "init_shutdown"}
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda sid: call("POST", f"/scenario/{sid}/", token, body), ids))
    wait_idle(timeout)


# --- main ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", default="100,250,500")
    parser.add_argument("--seconds", type=float, default=20.0)
    # Each running scenario holds one worker thread: two workers must take the largest step.
    parser.add_argument("--runner-concurrency", type=int, default=256)
    parser.add_argument("--db-pool-max", type=int, default=8)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--api-seconds", type=float, default=10.0)
    parser.add_argument("--post-max", type=int, default=200)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--skip-api", action="store_true")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy runner1 in each step (bench/scale_profile)"
    )
    args = parser.parse_args()
    args.steps = sorted(int(s) for s in args.steps.split(","))
    t_bench = time.monotonic()

    fresh_database()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from runner.samples import write_sample_video
    from testbed.stack import Stack

    work = args.work = Path(tempfile.mkdtemp(prefix="misis-bench-scale-"))
    write_sample_video(work / "videos" / "loop1.mp4", frames=30, fps=1.0, size=(160, 120))
    user = get_user_model().objects.create_user(username="bench")
    token = Token.objects.create(user=user).key
    stack = Stack(
        work,
        work / "videos",
        api_port=PORT,
        MISIS_MOCK_DELAY_MS="0",
        MISIS_DB_POOL_MAX=str(args.db_pool_max),
        MISIS_QUOTA_ACTIVE_SCENARIOS="0",  # one bench user runs hundreds of scenarios
    )
    for name in ("runner1", "runner2"):
        cmd = stack.commands[name]
        cmd[cmd.index("-c") + 1] = str(args.runner_concurrency)
    timeout = settings.MISIS_HEARTBEAT_TIMEOUT
    print(
        f"# scale bench: steps {args.steps}, {args.seconds:.0f} s each; 2 runner workers x "
        f"{args.runner_concurrency} threads; mock detector; looping 160x120 file at 1 fps; "
        f"heartbeat every {settings.MISIS_HEARTBEAT_INTERVAL:g} s, timeout {timeout:g} s; "
        f"MISIS_DB_POOL_MAX={args.db_pool_max}; logs in {work}",
        flush=True,
    )
    try:
        for name in stack.commands:
            stack.start(name)
        # A shared, loaded machine has taken more than a minute to start a Celery worker.
        stack.wait_ready(list(stack.commands), timeout=240)
        wait(api.health, 30)
        steps = scale(args, stack, token, timeout)
        held = [s.n for s in steps if s.held]
        bad = next((s for s in steps if not s.held), None)
        if bad is None:
            print(
                f"limit: not reached; held {held[-1] if held else 0} scenarios with "
                "heartbeats on time"
            )
        else:
            print(f"limit: heartbeats missed at N={bad.n}; held {held[-1] if held else 0}")
        ok = bool(held) and held[-1] >= TARGET_SCENARIOS
        print(
            f"target: {TARGET_SCENARIOS} scenarios with heartbeats on time -> "
            f"{'met' if ok else 'NOT met'}"
        )
        mem = next((s for s in reversed(steps) if s.n in held), bad)
        if mem is not None:
            print(
                f"target: <= {TARGET_MB} MB RSS per scenario -> {mem.mb_per:.2f} MB at "
                f"N={mem.n}: {'met' if mem.mb_per <= TARGET_MB else 'NOT met'}",
                flush=True,
            )
        stop_all_scenarios(token)
        if not args.skip_api:
            api_load(args, stack, token, user)
    finally:
        stack.stop_all()
        print(f"# bench wall time {time.monotonic() - t_bench:.0f} s")


if __name__ == "__main__":
    main()
