"""What bench/scale.py measures, read straight from the database, Redis and the process table:
CPU of process groups, scenario totals and statuses, heartbeat lags, connections, log marks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psutil

from bench.common import wait

RUNNING = ("in_startup_processing", "active")
LOG_MARKS = {
    "too many connections": (b"too many connections", b"remaining connection slots"),
    "pool timeout": (b"PoolTimeout", b"couldn't get a connection"),
    "runner crashed": (b"runner crashed",),
    "missed heartbeat": (b"missed its heartbeat",),
    "lease lost": (b"stopping without publishing",),
}
CPU_CORES = psutil.cpu_count() or 1


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


def procs_named(*names: str) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["name"]) if p.info["name"] in names]


def postgres_procs() -> list[psutil.Process]:
    return procs_named("postgres", "postmaster")


def redis_procs() -> list[psutil.Process]:
    return procs_named("redis-server")


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
    groups["redis"] = redis_procs
    groups["beat"] = tree("beat")
    groups["bench"] = lambda: [psutil.Process()]
    return CpuMeter(groups)


def wait_idle(timeout: float) -> None:
    """Wait until no scenario is running or stopping; warn (and go on) after ``timeout``."""
    busy = (*RUNNING, "init_startup", "init_shutdown", "in_shutdown_processing")
    try:
        wait(lambda: count_status(*busy) == 0, timeout, 0.5)
    except TimeoutError:
        print(f"warning: {count_status(*busy)} scenarios not inactive after {timeout:.0f} s")


# --- part 2: the API under load ------------------------------------------------------------
