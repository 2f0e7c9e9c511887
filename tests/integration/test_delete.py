"""DELETE /scenario/<id>/ of a running scenario, with real workers: its runner is fenced out and
moves on, and nothing of the scenario is left in PostgreSQL, the storage or Redis."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from misis import keys
from misis.redis_client import get_redis
from scenarios.models import Event, OutboxMessage, Prediction, Scenario
from scenarios.preview import mark_watched
from scenarios.snapshots import snapshot_dir
from testbed.stack import Stack, wait_for
from tests.conftest import client_for
from tests.integration.api import create, get, wait_status

pytestmark = pytest.mark.integration

# The mock detector's person stands still in the middle of the frame: a zone over the whole
# frame gives an enter at once and a dwell a second later, each with a stored snapshot.
ZONE = {"name": "all", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]], "dwell": 1}


@pytest.fixture
def client(live: Stack, django_user_model: type[User]) -> APIClient:
    return client_for(django_user_model.objects.create_user(username="deleter"))


def redis_keys_of(sid: str) -> list[bytes]:
    return sorted(get_redis().scan_iter(match=f"*{sid}*", count=1000))


def test_delete_while_running_leaves_nothing_and_publishes_nothing_after(
    client: APIClient, live: Stack, video_root: Path
) -> None:
    sid = create(client, "loop.mp4", loop=True, target_fps=10, zones=[ZONE])
    running = wait_status(client, sid, "active")
    runner = live.name_of(running["runner"])
    mark_watched(sid)  # someone watches: the runner encodes preview frames
    wait_for(
        lambda: (
            Event.objects.filter(scenario_id=sid).count() >= 2
            and get_redis().exists(keys.preview(sid))
        ),
        30,
        what="events with snapshots, and a preview",
    )
    folder = video_root / snapshot_dir(sid)
    assert any(folder.iterdir())
    assert Prediction.objects.filter(scenario_id=sid).exists()

    resp = client.delete(f"/scenario/{sid}/")
    assert resp.status_code == 204, resp.content
    deleted_at = time.monotonic()

    # The runner sees the stop flag within a frame, finds its epoch fenced off and leaves
    # without publishing.
    fenced = re.compile(rf"scenario {sid}: .*stopping without publishing".encode())
    wait_for(lambda: fenced.search(live.log(runner)), 10, what="the runner's fence log")
    # Whatever it was about to publish found no row: nothing came back, now or later.
    time.sleep(1.0)
    for model in (Prediction, Event, OutboxMessage):
        assert not model.objects.filter(scenario_id=sid).exists(), model.__name__
    assert not Scenario.objects.filter(pk=sid).exists()
    assert client.get(f"/scenario/{sid}/").status_code == 404
    assert client.delete(f"/scenario/{sid}/").status_code == 404
    assert client.get(f"/prediction/{sid}/").status_code == 404
    # The stop flag expires within the lease's TTL; the purge task sent with the delete
    # sweeps again after any runner has left: then nothing names the scenario in Redis.
    wait_for(lambda: not redis_keys_of(sid), 30, what=f"no Redis key of {sid}")
    assert not folder.exists()
    print(f"Redis clean {time.monotonic() - deleted_at:.1f} s after the delete")
    assert b"Traceback" not in live.log(runner)

    # The runner process moves on: alive, and the stack runs the next scenario.
    assert live.procs[runner].poll() is None
    other = create(client, "loop.mp4", loop=True, target_fps=10)
    wait_status(client, other, "active")
    wait_for(lambda: get(client, other)["frames_processed"] > 5, 20, what="progress")
    assert client.delete(f"/scenario/{other}/").status_code == 204
