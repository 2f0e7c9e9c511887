"""A scenario's life through the API with real workers: run to the end, stop, restart, fail over."""

from __future__ import annotations

import signal
import time

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from scenarios.models import Prediction, Scenario
from testbed.stack import Stack, wait_for
from tests.conftest import client_for
from tests.integration.api import create, get, wait_status

pytestmark = pytest.mark.integration


@pytest.fixture
def client(live: Stack, django_user_model: type[User]) -> APIClient:
    return client_for(django_user_model.objects.create_user(username="it"))


def frame_indices(sid: str) -> list[int]:
    return list(
        Prediction.objects.filter(scenario_id=sid)
        .order_by("frame_index")
        .values_list("frame_index", flat=True)
    )


def test_file_runs_to_end_of_stream_with_every_frame_once(client: APIClient) -> None:
    sid = create(client, "short.mp4")
    done = wait_status(client, sid, "inactive", timeout=30)
    assert done["stop_reason"] == "end_of_stream"
    assert done["error"] is None
    assert done["frames_processed"] == 40
    assert done["progress"] == 1.0
    assert frame_indices(sid) == list(range(40))
    page = client.get(f"/prediction/{sid}/?limit=1000").json()
    assert [r["frame_index"] for r in page["results"]] == list(range(40))
    assert all(r["width"] == 320 and r["height"] == 240 for r in page["results"])
    assert page["results"][0]["boxes"][0]["label"] == "person"


def test_target_fps_samples_a_file(client: APIClient) -> None:
    sid = create(client, "short.mp4", target_fps=5)  # the file is 25 fps, 40 frames
    wait_status(client, sid, "inactive", timeout=30)
    assert frame_indices(sid) == [0, 5, 10, 15, 20, 25, 30, 35]


def test_stop_and_restart_resume_after_last_published_frame(client: APIClient) -> None:
    sid = create(client, "long.mp4")
    active = wait_status(client, sid, "active")
    assert active["runner"] and active["started_at"]
    wait_for(lambda: get(client, sid)["frames_processed"] > 20, 20, what="progress")
    resp = client.post(f"/scenario/{sid}/", {"status": "init_shutdown"}, format="json")
    assert resp.status_code == 202
    stopped = wait_status(client, sid, "inactive", timeout=10)
    assert stopped["stop_reason"] == "requested"
    assert stopped["runner"] is None
    first = frame_indices(sid)
    assert first == list(range(len(first)))
    assert stopped["progress"] == pytest.approx(len(first) / 1500, abs=0.01)
    time.sleep(1.5)  # the stopped runner publishes nothing more
    assert len(frame_indices(sid)) == len(first)

    resp = client.post(f"/scenario/{sid}/", {"status": "init_startup"}, format="json")
    assert resp.status_code == 202
    assert resp.json()["epoch"] == 2
    wait_status(client, sid, "active")
    wait_for(lambda: len(frame_indices(sid)) > len(first) + 20, 20, what="progress")
    client.post(f"/scenario/{sid}/", {"status": "init_shutdown"}, format="json")
    wait_status(client, sid, "inactive", timeout=10)
    frames = frame_indices(sid)
    assert frames == list(range(len(frames)))  # resumed right after the last one: no gap
    resumed = Prediction.objects.filter(scenario_id=sid, epoch=2).order_by("frame_index").first()
    assert resumed is not None and resumed.frame_index == len(first)


def test_kill_9_fails_over_without_duplicates(live: Stack, client: APIClient) -> None:
    sid = create(client, "long.mp4")
    first = wait_status(client, sid, "active")
    wait_for(lambda: get(client, sid)["frames_processed"] > 10, 20, what="progress")
    victim = live.name_of(first["runner"])
    killed_at = time.monotonic()
    live.signal(victim, signal.SIGKILL)
    moved = wait_for(
        lambda: (
            (d := get(client, sid))["status"] == "active"
            and d["runner"] not in (None, first["runner"])
            and d
        ),
        15,
        what="failover",
    )
    recovery = time.monotonic() - killed_at
    assert moved["restarts"] == 1
    assert moved["epoch"] == first["epoch"] + 1
    wait_for(
        lambda: Prediction.objects.filter(scenario_id=sid, epoch=moved["epoch"]).count() > 10,
        15,
        what="progress after failover",
    )
    client.post(f"/scenario/{sid}/", {"status": "init_shutdown"}, format="json")
    wait_status(client, sid, "inactive", timeout=10)
    frames = frame_indices(sid)
    # Every frame once: no duplicate (unique key) and no gap where the dead runner stopped.
    assert frames == list(range(len(frames)))
    assert Scenario.objects.get(pk=sid).restarts == 1
    print(f"recovery after kill -9: {recovery:.2f}s")


def test_paused_runner_is_replaced_and_publishes_nothing_when_resumed(
    live: Stack, client: APIClient
) -> None:
    sid = create(client, "long.mp4")
    first = wait_status(client, sid, "active")
    wait_for(lambda: get(client, sid)["frames_processed"] > 10, 20, what="progress")
    victim = live.name_of(first["runner"])
    live.signal(victim, signal.SIGSTOP)
    try:
        moved = wait_for(
            lambda: (d := get(client, sid))["runner"] not in (None, first["runner"]) and d,
            # The heartbeat timeout (5 s), the lease's margin over it, and the restart; a loaded
            # 2-core machine has needed more than 15 s.
            30,
            what="replacement",
        )
        old_epoch = first["epoch"]
        assert moved["epoch"] > old_epoch
        published_by_old = Prediction.objects.filter(scenario_id=sid, epoch=old_epoch).count()
    finally:
        live.signal(victim, signal.SIGCONT)
    # Resumed past its lease, the old runner must notice and publish nothing more.
    wait_for(
        lambda: (
            f"scenario {sid}".encode() in live.log(victim)
            and b"stopping without publishing" in live.log(victim)
        ),
        10,
        what="old runner notices lease loss",
    )
    time.sleep(1)
    assert Prediction.objects.filter(scenario_id=sid, epoch=old_epoch).count() == published_by_old
    now = get(client, sid)
    assert now["status"] == "active"
    assert now["runner"] == moved["runner"]
    client.post(f"/scenario/{sid}/", {"status": "init_shutdown"}, format="json")
    wait_status(client, sid, "inactive", timeout=10)
    frames = frame_indices(sid)
    assert frames == list(range(len(frames)))


def test_missing_file_ends_inactive_with_error(client: APIClient) -> None:
    sid = create(client, "no-such-file.mp4")
    done = wait_status(client, sid, "inactive", timeout=30)
    assert done["stop_reason"] == "error"
    assert "no-such-file.mp4" in done["error"]


def test_health_sees_the_workers(live: Stack, client: APIClient) -> None:
    body = wait_for(
        lambda: (
            (b := client.get("/health/").json())["workers"]
            == {"runner": 2, "inference": 1, "orchestrator": 1}
            and b
        ),
        20,
        what="workers registered",
    )
    assert body["inference"] == {"backend": "mock", "model": "mock", "runtime": "mock"}
