"""Part 2 of bench/scale.py: the API under load from this process (keep-alive clients on
loopback, bounded in time and count), with the CPU each part of the stack spends meanwhile."""

from __future__ import annotations

import argparse
import http.client
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import field
from typing import Any

from bench.common import Api, insert_predictions, pct, wait
from bench.scale_measure import CPU_CORES, CpuMeter, stack_meter, wait_idle

PORT = 8767
api = Api(PORT)
call = api.call


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
        times: list[float] = []
        statuses: dict[int, int] = {}
        errors = 0
        bodies: list[Any] = []
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
