"""Scale figures on this machine, one run: how many scenarios the runners hold, and the API under
concurrent load.

    .venv/bin/python -m bench.scale [--steps 25,50,100,200] [--seconds 30]
                                    [--runner-concurrency 128] [--db-pool-max 8]

1. Scenario scale: mock detector (no delay), every scenario on a looping 160x120 file at 1 fps
   (about one analysed frame a second each), two runner workers with --runner-concurrency
   threads each. For each step N (cumulative) it waits until N scenarios are active, then for
   --seconds samples every second, straight from the database, the heartbeat lag of every
   running scenario, and reports its p50/p99/max, the share of samples older than 2 s, the
   watchdog's restarts during the step, analysed frames per second against N, CPU and RSS of
   the runner processes (RSS per scenario against the idle runners), their threads, and the
   database connections in use. It stops at the first step whose heartbeats miss (max lag over
   MISIS_HEARTBEAT_TIMEOUT, a restart, a scenario lost, or not all N active in time).
2. The API under load from this process (8 keep-alive clients on loopback, bounded in time and
   count) with no scenario running: POST /scenario/ (each created scenario is stopped after,
   which is measured too) and GET /prediction/<id>/?after=<random>&limit=100 on ~100k rows.

Uses its own database (misis_bench) and Redis database 13; starts and stops its own stack.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.common import Api, fresh_database, insert_predictions, wait

PORT = 8767
api = Api(PORT)
call = api.call
MISSED_AFTER = 2.0  # a heartbeat older than this (twice the interval) counts as missed
RUNNING = ("in_startup_processing", "active")
LOG_MARKS = {
    "too many connections": (b"too many connections", b"remaining connection slots"),
    "pool timeout": (b"PoolTimeout", b"couldn't get a connection"),
    "runner crashed": (b"runner crashed",),
    "missed heartbeat": (b"missed its heartbeat",),
    "lease lost": (b"stopping without publishing",),
}
CPU_CORES = psutil.cpu_count() or 1


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def sql(query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(query, params or [])
        return list(cur.fetchall())


# --- CPU of process groups -----------------------------------------------------------------


def cpu_times(procs: list[psutil.Process]) -> dict[int, float]:
    out = {}
    for p in procs:
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except psutil.Error:
            pass
    return out


def postgres_procs() -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["name"]):
        if p.info["name"] in ("postgres", "postmaster"):
            found.append(p)
    return found


class CpuMeter:
    """CPU seconds used by named process groups between start() and stop(), in % of one core."""

    def __init__(self, groups: dict[str, Callable[[], list[psutil.Process]]]) -> None:
        self.groups = groups
        self.before: dict[str, dict[int, float]] = {}
        self.t0 = 0.0
        self.sys0: Any = None

    def start(self) -> None:
        self.before = {name: cpu_times(get()) for name, get in self.groups.items()}
        self.sys0 = psutil.cpu_times()
        self.t0 = time.monotonic()

    def stop(self) -> dict[str, float]:
        elapsed = max(time.monotonic() - self.t0, 1e-6)
        out = {}
        for name, get in self.groups.items():
            after = cpu_times(get())
            before = self.before[name]
            used = sum(t - before.get(pid, 0.0) for pid, t in after.items())
            out[name] = 100.0 * used / elapsed
        sys1 = psutil.cpu_times()
        busy = (sum(sys1) - sys1.idle - getattr(sys1, "iowait", 0.0)) - (
            sum(self.sys0) - self.sys0.idle - getattr(self.sys0, "iowait", 0.0)
        )
        out["system"] = 100.0 * busy / elapsed
        out["other"] = out["system"] - sum(out[name] for name in self.groups)
        return out


# --- part 1: scenario scale ----------------------------------------------------------------


@dataclass
class Step:
    n: int
    ramp_s: float = 0.0
    active: int = 0
    lags: list[float] = field(default_factory=list)
    min_running: int = 0
    restarts: int = 0
    lost: int = 0
    fps: float = 0.0
    dropped: int = 0
    cpu: dict[str, float] = field(default_factory=dict)
    rss_mb: float = 0.0
    mb_per: float = 0.0
    threads: int = 0
    db_conns_max: int = 0
    db_tx: float = 0.0
    redis_ops: float = 0.0
    split: str = ""
    log_marks: dict[str, int] = field(default_factory=dict)
    note: str = ""

    @property
    def missed(self) -> float:
        return sum(lag > MISSED_AFTER for lag in self.lags) / max(len(self.lags), 1)


def totals() -> tuple[int, int, int, int]:
    """(frames_processed, restarts, frames_dropped, inactive) over all scenarios."""
    row = sql(
        "SELECT coalesce(sum(frames_processed), 0), coalesce(sum(restarts), 0),"
        " coalesce(sum(frames_dropped), 0), count(*) FILTER (WHERE status = 'inactive')"
        " FROM scenarios_scenario"
    )[0]
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


def count_status(*statuses: str) -> int:
    return int(
        sql("SELECT count(*) FROM scenarios_scenario WHERE status = ANY(%s)", [list(statuses)])[0][
            0
        ]
    )


def db_connections() -> int:
    return int(
        sql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")[0][0]
    )


def db_commits() -> int:
    return int(
        sql(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database"
            " WHERE datname = current_database()"
        )[0][0]
    )


def redis_commands() -> int:
    from misis.redis_client import get_redis

    return int(get_redis().info("stats")["total_commands_processed"])


def heartbeat_lags() -> list[float]:
    return [
        float(r[0])
        for r in sql(
            "SELECT extract(epoch FROM clock_timestamp() - heartbeat_at) FROM scenarios_scenario"
            " WHERE status = ANY(%s) AND heartbeat_at IS NOT NULL",
            [list(RUNNING)],
        )
    ]


def create_scenarios(count: int, token: str, source: str) -> list[str]:
    body = {"source": source, "params": {"loop": True}}
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(call, "POST", "/scenario/", token, body) for _ in range(count)]
        return [f.result()["id"] for f in futures]


def log_counts(stack: Any, names: list[str]) -> dict[str, int]:
    logs = b"".join(stack.log(n) for n in names)
    return {k: sum(logs.count(m) for m in marks) for k, marks in LOG_MARKS.items()}


def stack_meter(stack: Any) -> CpuMeter:
    """CPU of each part of the stack, PostgreSQL, and this process (the load generator)."""

    def tree(name: str) -> Callable[[], list[psutil.Process]]:
        def get() -> list[psutil.Process]:
            p = psutil.Process(stack.pid(name))
            return [p, *p.children(recursive=True)]

        return get

    groups = {n: tree(n) for n in ("runner1", "runner2", "inference", "orchestrator", "api")}
    groups["postgres"] = postgres_procs
    groups["beat"] = tree("beat")
    groups["bench"] = lambda: [psutil.Process()]
    return CpuMeter(groups)


def scale(args: argparse.Namespace, stack: Any, token: str, timeout: float) -> list[Step]:
    runners = [psutil.Process(stack.pid(n)) for n in ("runner1", "runner2")]

    def runner_procs() -> list[psutil.Process]:
        return [q for p in runners for q in (p, *p.children(recursive=True))]

    meter = stack_meter(stack)

    def rss() -> int:
        return sum(p.memory_info().rss for p in runner_procs())

    time.sleep(2.0)
    rss0 = rss()
    print(
        f"idle runners: RSS {rss0 / 2**20:.0f} MB, "
        f"{sum(p.num_threads() for p in runner_procs())} threads, "
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
        step.threads = sum(p.num_threads() for p in runner_procs())
        per_runner = sql(
            "SELECT runner, count(*) FROM scenarios_scenario WHERE status = ANY(%s)"
            " GROUP BY runner ORDER BY runner",
            [list(RUNNING)],
        )
        step.split = "/".join(str(c) for _, c in per_runner)
        marks1 = log_counts(stack, ["runner1", "runner2", "orchestrator", "api", "inference"])
        step.log_marks = {k: marks1[k] - marks0[k] for k in marks1 if marks1[k] - marks0[k]}
        print_step(step, first=len(steps) == 1)
        if failed(step, timeout):
            break
    return steps


def failed(step: Step, timeout: float) -> bool:
    return bool(
        step.note
        or (step.lags and max(step.lags) > timeout)
        or step.restarts > 0
        or step.lost > 0
        or step.log_marks.get("too many connections")
    )


HEADER = (
    f"{'N':>4} {'ramp':>5} {'lag p50':>7} {'p99':>6} {'max':>6} {'missed':>6} {'rst':>4} "
    f"{'lost':>4} {'fps':>6} {'fps/N':>5} {'runCPU r1+r2':>12} {'infCPU':>6} {'orchCPU':>7} "
    f"{'apiCPU':>6} {'pgCPU':>5} {'sysCPU':>6} {'other':>5} "
    f"{'RSS MB':>6} {'MB/scn':>6} {'thr':>5} {'dbcon':>5}"
)


def print_step(step: Step, first: bool) -> None:
    if first:
        print(
            "# lag in s; CPU in % of one core (this machine: "
            f"{CPU_CORES} cores = {100 * CPU_CORES}%); other = machine minus this stack, "
            "PostgreSQL and the bench; RSS/threads: both runner processes"
        )
        print(HEADER)
    lags = step.lags
    print(
        f"{step.n:>4} {step.ramp_s:>4.1f}s {pct(lags, 50):>7.2f} {pct(lags, 99):>6.2f} "
        f"{(max(lags) if lags else float('nan')):>6.2f} {100 * step.missed:>5.1f}% "
        f"{step.restarts:>4} {step.lost:>4} {step.fps:>6.1f} {step.fps / step.n:>5.2f} "
        f"{step.cpu['runner1']:>5.0f}%+{step.cpu['runner2']:>4.0f}% "
        f"{step.cpu['inference']:>5.0f}% "
        f"{step.cpu['orchestrator']:>6.0f}% {step.cpu['api']:>5.0f}% "
        f"{step.cpu['postgres']:>4.0f}% "
        f"{step.cpu['system']:>5.0f}% {step.cpu['other']:>4.0f}% "
        f"{step.rss_mb:>6.0f} {step.mb_per:>6.2f} {step.threads:>5} "
        f"{step.db_conns_max:>5}",
        flush=True,
    )
    extra = [
        f"scenarios per runner process {step.split}; PostgreSQL {step.db_tx:.0f} tx/s "
        f"({step.db_tx / step.n:.1f} per scenario); Redis {step.redis_ops:.0f} commands/s "
        f"({step.redis_ops / step.n:.0f} per scenario; server-wide)"
    ]
    if step.note:
        extra.append(step.note)
    if step.min_running < step.n:
        extra.append(f"running fell to {step.min_running}")
    if step.dropped:
        extra.append(f"{step.dropped} frames dropped")
    extra += [f"log '{k}' x{v}" for k, v in step.log_marks.items()]
    print("       " + "; ".join(extra), flush=True)


def stop_all_scenarios(token: str, timeout: float = 90.0) -> None:
    ids = [str(r[0]) for r in sql("SELECT id FROM scenarios_scenario WHERE status <> 'inactive'")]
    body = {"status": "init_shutdown"}
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda sid: call("POST", f"/scenario/{sid}/", token, body), ids))
    wait_idle(timeout)


def wait_idle(timeout: float) -> None:
    """Wait until no scenario is running or stopping; warn (and go on) after ``timeout``."""
    busy = (*RUNNING, "init_startup", "init_shutdown", "in_shutdown_processing")
    try:
        wait(lambda: count_status(*busy) == 0, timeout, 0.5)
    except TimeoutError:
        print(f"warning: {count_status(*busy)} scenarios not inactive after {timeout:.0f} s")


# --- part 2: the API under load ------------------------------------------------------------


@dataclass
class Load:
    times: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    bodies: list[Any] = field(default_factory=list)
    elapsed: float = 0.0


def load(
    clients: int,
    seconds: float,
    max_requests: int,
    make: Callable[[int], tuple[str, str, dict[str, Any] | None]],
    token: str,
    keep_bodies: bool = False,
) -> Load:
    """``clients`` threads, one keep-alive connection each, until ``seconds`` or the count."""
    result = Load()
    lock = threading.Lock()
    issued = [0]
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    start = threading.Event()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
        times, statuses, errors, bodies = [], {}, 0, []
        start.wait()
        deadline = t_start + seconds
        while time.perf_counter() < deadline:
            with lock:
                if issued[0] >= max_requests:
                    break
                i = issued[0]
                issued[0] += 1
            method, path, body = make(i)
            t0 = time.perf_counter()
            try:
                conn.request(method, path, json.dumps(body) if body is not None else None, headers)
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException):
                errors += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
                continue
            times.append(time.perf_counter() - t0)
            statuses[resp.status] = statuses.get(resp.status, 0) + 1
            if keep_bodies and resp.status < 300:
                bodies.append(json.loads(data))
        conn.close()
        with lock:
            result.times += times
            result.errors += errors
            result.bodies += bodies
            for k, v in statuses.items():
                result.statuses[k] = result.statuses.get(k, 0) + v

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    t_start = time.perf_counter()
    start.set()
    for t in threads:
        t.join()
    result.elapsed = time.perf_counter() - t_start
    return result


def print_load(what: str, r: Load, clients: int, cpu: dict[str, float]) -> None:
    n = len(r.times)
    print(
        f"{what:<38} {n:>6} req in {r.elapsed:5.1f} s  {n / r.elapsed:7.1f} req/s  "
        f"p50 {pct(r.times, 50) * 1000:6.1f} ms  p99 {pct(r.times, 99) * 1000:6.1f} ms  "
        f"({clients} clients; status {dict(sorted(r.statuses.items()))}"
        f"{f', {r.errors} connection errors' if r.errors else ''})",
    )
    runners = cpu["runner1"] + cpu["runner2"]
    print(
        f"{'':<38} CPU: api {cpu['api']:.0f}%, postgres {cpu['postgres']:.0f}%, runners "
        f"{runners:.0f}%, orchestrator {cpu['orchestrator']:.0f}%, load generator "
        f"{cpu['bench']:.0f}%, machine {cpu['system']:.0f}% of {100 * CPU_CORES}%",
        flush=True,
    )


def runner_consumers(on: bool) -> None:
    """Let the runner workers take tasks from the runner queue, or not (celery remote control)."""
    import socket

    from misis.celery import app

    names = [f"runner{i}@{socket.gethostname()}" for i in (1, 2)]
    if on:
        app.control.add_consumer("runner", destination=names, reply=True, timeout=5)
    else:
        app.control.cancel_consumer("runner", destination=names, reply=True, timeout=5)


def post_and_stop(
    args: argparse.Namespace, stack: Any, token: str, meter: CpuMeter, paused: bool
) -> None:
    """POST /scenario/ under load, then stop each created scenario under load.

    ``paused``: the runner workers take no task meanwhile, so the figure is the API's (and the
    outbox dispatch's) own cost, not that of the runners starting every scenario it creates.
    """
    clients = args.clients
    how = "runners paused" if paused else "runners live"
    body = {"source": "loop1.mp4", "params": {"loop": True}}
    if paused:
        runner_consumers(False)
    try:
        meter.start()
        r = load(
            clients,
            args.api_seconds,
            args.post_max,
            lambda i: ("POST", "/scenario/", body),
            token,
            keep_bodies=True,
        )
        print_load(f"POST /scenario/ ({how})", r, clients, meter.stop())
        ids = [b["id"] for b in r.bodies]
        stop = {"status": "init_shutdown"}
        meter.start()
        r = load(clients, 60.0, len(ids), lambda i: ("POST", f"/scenario/{ids[i]}/", stop), token)
        print_load(f"POST /scenario/<id>/ stop ({how})", r, clients, meter.stop())
        wait_idle(90.0)
    finally:
        if paused:
            runner_consumers(True)
    if paused:
        # The start tasks queued meanwhile find their scenarios stopped and return at once.
        from misis.redis_client import get_redis

        try:
            wait(lambda: get_redis().llen("runner") == 0, 60, 0.5)
        except TimeoutError:
            print("warning: runner queue not drained after 60 s")


def api_load(args: argparse.Namespace, stack: Any, token: str, user: Any) -> None:
    from scenarios.models import Scenario

    clients = args.clients
    print(
        f"\n# API under load: {clients} keep-alive clients in one process, loopback, "
        f"each phase at most ~{args.api_seconds:.0f} s (POSTs: at most {args.post_max}), "
        "no scenario running before"
    )
    meter = stack_meter(stack)
    for paused in (True, False):
        post_and_stop(args, stack, token, meter, paused)

    scenario = Scenario.objects.create(owner=user, source="none.mp4", status="inactive")
    seconds = insert_predictions(scenario.pk, args.rows)
    print(f"inserted {args.rows} prediction rows in {seconds:.1f} s")
    rows = args.rows
    rng = random.Random(1)
    meter.start()
    r = load(
        clients,
        args.api_seconds,
        200_000,
        lambda i: (
            "GET",
            f"/prediction/{scenario.pk}/?after={rng.randrange(rows)}&limit=100",
            None,
        ),
        token,
    )
    print_load(f"GET /prediction/ limit=100 ({rows} rows)", r, clients, meter.stop())


# --- main ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", default="25,50,100,200")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--runner-concurrency", type=int, default=128)
    parser.add_argument("--db-pool-max", type=int, default=8)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--api-seconds", type=float, default=10.0)
    parser.add_argument("--post-max", type=int, default=200)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--skip-api", action="store_true")
    args = parser.parse_args()
    args.steps = sorted(int(s) for s in args.steps.split(","))
    t_bench = time.monotonic()

    fresh_database()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from runner.samples import write_sample_video
    from testbed.stack import Stack

    work = Path(tempfile.mkdtemp(prefix="misis-bench-scale-"))
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
        stack.start_all()
        wait(api.health, 30)
        steps = scale(args, stack, token, timeout)
        held = [s.n for s in steps if not failed(s, timeout)]
        bad = next((s for s in steps if failed(s, timeout)), None)
        if bad is None:
            print(
                f"limit: not reached; held {held[-1] if held else 0} scenarios with "
                "heartbeats on time"
            )
        else:
            print(f"limit: heartbeats missed at N={bad.n}; held {held[-1] if held else 0}")
        ok = bool(held) and held[-1] >= 200
        print(f"target: 200 scenarios with heartbeats on time -> {'met' if ok else 'NOT met'}")
        mem = next((s for s in reversed(steps) if s.n in held), bad)
        if mem is not None:
            print(
                f"target: < 30 MB RSS per scenario -> {mem.mb_per:.2f} MB at N={mem.n}: "
                f"{'met' if mem.mb_per < 30 else 'NOT met'}",
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
