"""The celery CLI as an operator uses it on real runner workers: drain, undrain, inspect, shut down.

Every command goes through the real ``celery -A misis ...`` executable, against the stack's
broker; the assertions read the database, the API and the worker processes.
"""

from __future__ import annotations

import base64
import json
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from scenarios.models import Prediction, Scenario
from testbed.processes import die_with_parent, free_port
from testbed.stack import CELERY, ROOT, Stack, wait_for
from tests.conftest import client_for
from tests.integration.api import create, get, wait_status

pytestmark = pytest.mark.integration

# The stack names its workers `<name>@%h`; %h is the host name.
HOST = socket.gethostname()


@pytest.fixture
def client(live: Stack, django_user_model: type[User]) -> APIClient:
    return client_for(django_user_model.objects.create_user(username="cli"))


@pytest.fixture
def undrained(live: Stack) -> Iterator[Stack]:
    """The stack, both runners consuming; whatever a test drained consumes again afterwards."""
    # A runner started again by `live` may still be booting (its log, appended to across
    # restarts, already says "ready"): a start sent now would wait past its deadline.
    for name in ("runner1", "runner2"):
        wait_for(partial(consumes_runner, name), 60, what=f"{name} consumes the runner queue")
    yield live
    for name in ("runner1", "runner2"):
        if live.procs[name].poll() is None:
            # A worker on its way out after a failed test answers nothing (69).
            celery(live, "control", "add_consumer", "runner", "-d", node(name), ok=(0, 69))


def node(name: str) -> str:
    return f"{name}@{HOST}"


def celery(stack: Stack, *args: str, ok: tuple[int, ...] = (0,)) -> str:
    """Run ``celery -A misis ARGS`` as an operator would; its output."""
    done = subprocess.run(
        [CELERY, "-A", "misis", *args],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode in ok, (done.returncode, done.stdout, done.stderr)
    return done.stdout + done.stderr


def drain(stack: Stack, name: str) -> None:
    out = celery(stack, "control", "cancel_consumer", "runner", "-d", node(name))
    assert "no longer consuming from runner" in out, out


def undrain(stack: Stack, name: str) -> None:
    out = celery(stack, "control", "add_consumer", "runner", "-d", node(name))
    assert "add consumer runner" in out, out
    # add_consumer answers before the worker consumes again (it is scheduled on its loop).
    wait_for(lambda: consumes_runner(name), 10, what=f"{name} consumes the runner queue")


def consumes_runner(name: str) -> bool:
    from misis.celery import app

    replies = app.control.inspect(destination=[node(name)], timeout=2).active_queues() or {}
    return any(q["name"] == "runner" for q in replies.get(node(name), []))


def runners_in_health(client: APIClient) -> int:
    return int(client.get("/health/").json()["workers"]["runner"])


def runner_of(stack: Stack, client: APIClient, sid: str) -> str:
    return stack.name_of(wait_status(client, sid, "active")["runner"])


def stop_and_check_frames(client: APIClient, sids: list[str]) -> None:
    """Stop the scenarios; each frame was published once, by one epoch after another."""
    for sid in sids:
        client.post(f"/scenario/{sid}/", {"status": "init_shutdown"}, format="json")
    for sid in sids:
        wait_status(client, sid, "inactive", timeout=20)
        rows = list(
            Prediction.objects.filter(scenario_id=sid)
            .order_by("frame_index")
            .values_list("frame_index", "epoch")
        )
        indices = [index for index, _ in rows]
        epochs = [epoch for _, epoch in rows]
        # A looping file stands in for a camera and skips stale frames, so indices may jump;
        # but none twice, and a runner that took over resumed after the last one published.
        assert len(set(indices)) == len(indices) > 0, sid
        assert epochs == sorted(epochs), sid


def test_cancel_consumer_drains_new_starts_and_add_consumer_undoes_it(
    undrained: Stack, client: APIClient
) -> None:
    live = undrained
    drain(live, "runner1")
    assert not consumes_runner("runner1")
    # /health/ counts it no more among the runners (its presence is refreshed every 5 s).
    wait_for(lambda: runners_in_health(client) == 1, 15, what="/health/ counts 1 runner")
    first = create(client, "long.mp4", loop=True)
    assert runner_of(live, client, first) == "runner2"

    undrain(live, "runner1")
    drain(live, "runner2")
    second = create(client, "long.mp4", loop=True)
    assert runner_of(live, client, second) == "runner1"

    # The drained runner2 keeps running what it has: heartbeats go on, so the watchdog sees
    # nothing to restart, past its whole patience (MISIS_HEARTBEAT_TIMEOUT, 5 s).
    before = get(client, first)
    time.sleep(7)
    after = get(client, first)
    assert after["status"] == "active"
    assert (after["epoch"], after["restarts"], after["runner"]) == (
        before["epoch"],
        0,
        before["runner"],
    )
    assert after["frames_processed"] > before["frames_processed"]

    undrain(live, "runner2")
    wait_for(lambda: runners_in_health(client) == 2, 15, what="/health/ counts 2 runners")
    stop_and_check_frames(client, [first, second])


def test_inspect_active_names_the_scenario_of_each_runner_task(
    live: Stack, client: APIClient
) -> None:
    sids = [create(client, "long.mp4", loop=True) for _ in range(3)]
    where = {sid: runner_of(live, client, sid) for sid in sids}
    out = celery(live, "inspect", "active", "--json")
    replies = json.loads(out[out.index("{") :])
    serving = {
        task["kwargs"]["scenario_id"]: name.split("@")[0]
        for name, tasks in replies.items()
        for task in tasks
        if task["name"] == "runner.run_scenario"
    }
    assert {sid: serving.get(sid) for sid in sids} == where
    stop_and_check_frames(client, sids)


@pytest.mark.parametrize("how", ["control shutdown", "SIGTERM"])
def test_shutdown_hands_scenarios_over_and_the_worker_exits(
    undrained: Stack, client: APIClient, how: str
) -> None:
    live = undrained
    # Put every scenario on runner1: runner2 takes no starts while they begin.
    drain(live, "runner2")
    sids = [create(client, "long.mp4", loop=True) for _ in range(3)]
    assert {runner_of(live, client, sid) for sid in sids} == {"runner1"}
    undrain(live, "runner2")
    for sid in sids:

        def progressed(s: str = sid) -> bool:
            return bool(get(client, s)["frames_processed"] > 10)

        wait_for(progressed, 20, what="progress")
    before = {sid: get(client, sid) for sid in sids}
    victim = live.procs["runner1"]
    logged = len(live.log("runner1"))  # the log is appended to across restarts

    asked_at = time.monotonic()
    if how == "SIGTERM":
        live.signal("runner1", signal.SIGTERM)
    else:
        # The worker does not answer a shutdown (it raises before replying), so the CLI says
        # "No nodes replied" and exits 69 (EX_UNAVAILABLE), as for any Celery worker.
        out = celery(
            live, "control", "shutdown", "-d", node("runner1"), "--timeout", "1", ok=(0, 69)
        )
        assert "No nodes replied" in out, out

    for sid in sids:

        def moved_on(s: str = sid) -> Any:  # False, or the scenario on its new runner
            return (
                (d := get(client, s))["status"] == "active"
                and d["runner"] not in (None, before[s]["runner"])
                and d
            )

        moved = wait_for(
            moved_on,
            20,
            what=f"hand-over of {sid}",
        )
        assert live.name_of(moved["runner"]) == "runner2"
        # A hand-over, not a failure: a new epoch, no restart counted (no backoff, no give-up).
        assert moved["epoch"] == before[sid]["epoch"] + 1
        assert moved["restarts"] == before[sid]["restarts"]
    handed_over = time.monotonic() - asked_at
    assert victim.wait(timeout=30) == 0
    exited = time.monotonic() - asked_at
    log = live.log("runner1")[logged:]
    assert (b"Got shutdown from remote" in log) == (how == "control shutdown")

    for sid in sids:
        epoch = before[sid]["epoch"] + 1

        def progressed_again(s: str = sid, e: int = epoch) -> bool:
            return Prediction.objects.filter(scenario_id=s, epoch=e).count() > 10

        wait_for(
            progressed_again,
            20,
            what="progress after the hand-over",
        )
    stop_and_check_frames(client, sids)
    counts = [Scenario.objects.values_list("restarts", "failed_restarts").get(pk=s) for s in sids]
    assert counts == [(0, 0)] * len(sids)  # a hand-over is no restart, and no failure
    print(f"{how}: on runner2 after {handed_over:.2f}s, runner1 exited after {exited:.2f}s")


def http_status(url: str, auth: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except OSError:
        return 0, b""


def flower_command() -> str:
    """The shell command of docker/flower.Dockerfile's CMD."""
    dockerfile = (ROOT / "docker" / "flower.Dockerfile").read_text()
    cmd = next(line for line in dockerfile.splitlines() if line.startswith("CMD "))
    argv = json.loads(cmd[4:])
    assert argv[:2] == ["sh", "-c"]
    return str(argv[2])


def test_flower_refuses_to_start_without_a_password(live: Stack) -> None:
    env = {k: v for k, v in live.env.items() if k != "FLOWER_BASIC_AUTH"}
    env["PATH"] = f"{Path(CELERY).parent}:{env.get('PATH', '')}"
    done = subprocess.run(
        ["sh", "-c", flower_command()],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "set FLOWER_BASIC_AUTH" in done.stderr


def test_flower_sees_the_runners_behind_its_password(live: Stack) -> None:
    port = free_port()
    auth = "ops:flower-test-password"
    env = {
        **live.env,
        "FLOWER_BASIC_AUTH": auth,
        "PATH": f"{Path(CELERY).parent}:{live.env.get('PATH', '')}",
    }
    # The image's own command, on a free port.
    command = flower_command().replace("--port=5555", f"--port={port} --address=127.0.0.1")
    log = open(live.log_dir / "flower.log", "ab")  # noqa: SIM115 - the child owns it
    flower = subprocess.Popen(
        ["sh", "-c", command],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_status(f"{base}/healthcheck")[0] == 200, 60, what="flower up")
        assert http_status(f"{base}/api/workers")[0] == 401
        assert http_status(f"{base}/api/workers", "ops:wrong")[0] == 401
        assert http_status(f"{base}/", "ops:wrong")[0] == 401

        def workers() -> dict[str, object]:
            status, body = http_status(f"{base}/api/workers?refresh=1", auth)
            return dict(json.loads(body)) if status == 200 else {}

        seen = wait_for(
            lambda: (w := workers()) and {node("runner1"), node("runner2")} <= set(w) and w,
            60,
            what="flower lists the runners",
        )
        assert node("orchestrator") in seen
    finally:
        flower.terminate()
        flower.wait(timeout=15)
