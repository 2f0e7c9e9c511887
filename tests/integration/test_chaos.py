"""Chaos: kill and pause every kind of process at random, restart Redis and PostgreSQL, then
check the history (Jepsen-style, after the fact).

While several scenarios run, a seeded random schedule sends kill -9 and SIGSTOP/SIGCONT to the
runner, inference, orchestrator and beat processes, and restarts Redis (losing every key:
leases, queued messages, frames in flight) and PostgreSQL (breaking every connection). Dead
processes are started again, as run.sh's supervisor would. Afterwards:

* every file scenario ended ``end_of_stream`` with each frame published exactly once (no
  duplicate, no gap), and the looping one is ``active`` under one live runner holding the lease;
* no frame was published by a stale runner after a newer epoch took over (epochs never go
  down along the frame index);
* no status went backwards (no restart was requested, so the status only moves forward);
* every outbox row was delivered;
* each file scenario's analytics events are numbered 1..N without gap or duplicate, no event
  (track, type, zone/line, frame) was written twice, and the list equals that of an
  undisturbed reference run of the same file with the same params, run first.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import OperationalError, connection
from django.db.utils import InterfaceError

from misis.lease import lease_holder_epoch
from scenarios.models import Event, OutboxMessage, Prediction, Scenario, Status
from scenarios.services import commands
from testbed.stack import Stack, wait_for
from tests.integration import faults

pytestmark = pytest.mark.integration

SECONDS = float(os.environ.get("MISIS_CHAOS_SECONDS", "40"))
SEED = int(os.environ.get("MISIS_CHAOS_SEED", "20261128"))
FILE_FRAMES = 1500  # long.mp4
RANK = {s: i for i, s in enumerate(Status)}  # the contract's order; no restart is requested
# The mock detector's person box never moves (its anchor is at (0.5, 0.75)), so events come from
# zones around it: one enter each once the track is confirmed, and one dwell each, spread over
# the file's 60 s so that they are written while the faults strike. Nothing crosses the line (a
# still box cannot); it is there so that its per-track state is saved and restored too.
DWELLS = (5, 15, 25, 35, 45, 55)
ANALYTICS: dict[str, Any] = {
    "zones": [
        {"name": f"z{d}", "polygon": [[0.2, 0.5], [0.8, 0.5], [0.8, 0.9], [0.2, 0.9]], "dwell": d}
        for d in DWELLS
    ],
    "lines": [{"name": "across", "points": [[0.0, 0.6], [1.0, 0.6]]}],
}


def db(fn: Callable[[], Any], tries: int = 50) -> Any:
    """Run an ORM read, riding out a PostgreSQL restart."""
    for _ in range(tries):
        try:
            return fn()
        except (OperationalError, InterfaceError):
            connection.close()
            time.sleep(0.2)
    return fn()


def frames_of(sid: str) -> list[tuple[int, int]]:
    """(frame_index, epoch) of each prediction of a scenario, in frame order."""
    return list(
        Prediction.objects.filter(scenario_id=sid)
        .order_by("frame_index")
        .values_list("frame_index", "epoch")
    )


def events(sid: str) -> list[tuple[Any, ...]]:
    return list(
        Event.objects.filter(scenario_id=sid)
        .order_by("seq")
        .values_list("seq", "type", "zone", "line", "direction", "track_id", "frame_index")
    )


class Monitor(threading.Thread):
    """Samples every scenario's status a few times a second, for the history check."""

    def __init__(self, ids: list[str]) -> None:
        super().__init__(daemon=True)
        self.ids = ids
        self.history: dict[str, list[str]] = {i: [] for i in ids}
        self.stop_event = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                try:
                    rows = dict(
                        Scenario.objects.filter(pk__in=self.ids).values_list("pk", "status")
                    )
                except (OperationalError, InterfaceError):
                    connection.close()
                    time.sleep(0.2)
                    continue
                for pk, status in rows.items():
                    h = self.history[str(pk)]
                    if not h or h[-1] != status:
                        h.append(status)
                time.sleep(0.2)
        finally:
            connection.close()


def test_chaos(live: Stack, django_user_model: type[User]) -> None:
    rng = random.Random(SEED)
    owner = django_user_model.objects.create_user(username="chaos")
    # The reference: the same file with the same params, undisturbed.
    reference = str(
        commands.scenario_create(owner=owner, source="long.mp4", params=ANALYTICS, name="ref").pk
    )
    wait_for(
        lambda: Scenario.objects.get(pk=reference).status == Status.INACTIVE,
        120,
        interval=0.5,
        what="the reference run",
    )
    expected = [row[1:] for row in events(reference)]
    assert len(expected) == 2 * len(DWELLS), expected  # an enter and a dwell per zone
    files = [
        str(
            commands.scenario_create(
                owner=owner, source="long.mp4", params=ANALYTICS, name=f"file{i}"
            ).pk
        )
        for i in range(3)
    ]
    looping = str(
        commands.scenario_create(owner=owner, source="loop.mp4", params={"loop": True}).pk
    )
    ids = [*files, looping]
    monitor = Monitor(ids)
    monitor.start()
    wait_for(
        lambda: db(lambda: Scenario.objects.filter(pk__in=ids, status="active").count()) == 4,
        30,
        what="all four active",
    )

    def kill(name: str) -> str:
        live.signal(name, signal.SIGKILL)
        live.procs[name].wait(10)
        time.sleep(rng.uniform(0.5, 2.0))  # the supervisor notices and starts it again
        live.ensure_running()
        return f"kill -9 {name}"

    def pause(name: str) -> str:
        seconds = rng.choice([2.0, 7.0])  # shorter and longer than the 3 s lease
        live.signal(name, signal.SIGSTOP)
        time.sleep(seconds)
        live.signal(name, signal.SIGCONT)
        return f"SIGSTOP {name} for {seconds:.0f} s"

    actions: list[tuple[str, Callable[[], str]]] = [
        *[(f"kill {n}", lambda n=n: kill(n)) for n in ("runner1", "runner2")] * 2,
        *[(f"pause {n}", lambda n=n: pause(n)) for n in ("runner1", "runner2")],
        ("kill inference", lambda: kill("inference")),
        ("pause inference", lambda: pause("inference")),
        ("kill orchestrator", lambda: kill("orchestrator")),
        ("kill beat", lambda: kill("beat")),
        ("restart redis", lambda: f"restart Redis ({faults.restart_redis():.1f} s)"),
    ]
    injected: list[str] = []
    deadline = time.monotonic() + SECONDS
    postgres_done = False
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(1.0, 3.0))
        if not postgres_done and time.monotonic() > deadline - SECONDS / 2:
            postgres_done = True
            injected.append(f"restart PostgreSQL ({faults.restart_postgres():.1f} s)")
            continue
        injected.append(rng.choice(actions)[1]())
    live.ensure_running()

    def settled() -> bool:
        rows = {
            str(k): v for k, v in Scenario.objects.filter(pk__in=ids).values_list("pk", "status")
        }
        return all(rows[f] == Status.INACTIVE for f in files)

    wait_for(lambda: db(settled), 180, interval=1, what="file scenarios to finish")
    wait_for(
        lambda: (
            (s := db(lambda: Scenario.objects.get(pk=looping))).status == Status.ACTIVE
            and s.runner is not None
            and lease_holder_epoch(looping) == s.epoch
        ),
        30,
        what="looping scenario under one runner",
    )
    final = db(lambda: Scenario.objects.get(pk=looping))
    monitor.stop_event.set()
    monitor.join(5)

    print("\ninjected:", *injected, sep="\n  ")
    held = []
    for sid in files:
        s = db(partial(Scenario.objects.get, pk=sid))
        frames = db(partial(frames_of, sid))
        assert s.stop_reason == "end_of_stream", (sid, s.stop_reason, s.error)
        assert [f for f, _ in frames] == list(range(FILE_FRAMES)), sid  # once each, no gap
        epochs = [e for _, e in frames]
        assert epochs == sorted(epochs), f"{sid}: a stale runner published after a newer one"
        found = db(partial(events, sid))
        assert [row[0] for row in found] == list(range(1, len(found) + 1)), sid
        keys = [(track, kind, zone, line, frame) for _, kind, zone, line, _, track, frame in found]
        assert len(set(keys)) == len(keys), f"{sid}: an event written twice"
        assert [row[1:] for row in found] == expected, sid
        held.append(
            f"{sid}: {FILE_FRAMES} frames once each, {len(found)} events as the reference's, "
            f"{s.restarts} restarts, epochs {epochs[0]}..{epochs[-1]}"
        )
    loop_frames = db(
        lambda: list(
            Prediction.objects.filter(scenario_id=looping)
            .order_by("frame_index")
            .values_list("epoch", flat=True)
        )
    )
    assert loop_frames == sorted(loop_frames)
    pid = int(final.runner.rsplit(":", 1)[1])
    assert pid in {p.pid for p in live.procs.values() if p.poll() is None}
    for sid, statuses in monitor.history.items():
        ranks = [RANK[Status(s)] for s in statuses]
        assert ranks == sorted(ranks), f"{sid} went backwards: {statuses}"
    pending = db(lambda: OutboxMessage.objects.filter(dispatched_at__isnull=True).count())
    assert pending == 0
    held += [
        f"looping scenario active on {final.runner} (epoch {final.epoch}, "
        f"{final.restarts} restarts), {len(loop_frames)} frames, epochs never went down",
        "no status went backwards; every outbox row delivered",
    ]
    print("held:", *held, sep="\n  ")
    # Leave the looping scenario stopped, and the test's connection usable for teardown.
    db(lambda: commands.scenario_request_stop(scenario_id=looping))
    connection.close()
