"""Analytics end to end with the real YOLO worker: a person walks across a plain background
past a line into a zone. Tracks, crossings, enters and dwell come out with stable track ids,
two scenarios keep separate tracks, a kill -9 of the runner mid-way changes no event, and every
event reaches a webhook receiver, signed, once."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from runner.samples import write_walker_video
from scenarios.models import Event
from testbed.stack import Stack, wait_for
from tests.conftest import client_for
from tests.integration.api import get, wait_status

pytestmark = pytest.mark.integration
SECRET = "integration-webhook-secret"
PARAMS: dict[str, Any] = {
    "target_fps": 5,
    "lines": [{"name": "mid", "points": [[0.5, 0.0], [0.5, 1.0]]}],
    "zones": [
        {"name": "right", "polygon": [[0.7, 0.0], [1.0, 0.0], [1.0, 1.0], [0.7, 1.0]], "dwell": 1}
    ],
}
EXPECTED = [("line_cross", None, "mid", "out"), ("zone_enter", "right", None, None),
            ("zone_dwell", "right", None, None)]  # fmt: skip


@pytest.fixture(scope="module")
def walker(video_root: Path) -> str:
    write_walker_video(video_root / "walker.mp4", frames=40, fps=10, stay=20)
    return "walker.mp4"


@pytest.fixture
def client(yolo_stack: Stack, transactional_db: None, django_user_model: type[User]) -> APIClient:
    yolo_stack.ensure_running()
    return client_for(django_user_model.objects.create_user(username="analytics"))


class Receiver:
    """Counts the deliveries whose signature holds, by event id."""

    def __init__(self) -> None:
        self.got: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                mac = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                ok = hmac.compare_digest(mac, self.headers["X-Misis-Signature"])
                if ok:
                    receiver.got.append(json.loads(body))
                self.send_response(200 if ok else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def start(client: APIClient, source: str, **extra: Any) -> str:
    answer = client.post(
        "/scenario/", {"source": source, "params": {**PARAMS, **extra}}, format="json"
    )
    assert answer.status_code == 201, answer.json()
    return str(answer.json()["id"])


def events(sid: str) -> list[tuple[Any, ...]]:
    rows = Event.objects.filter(scenario_id=sid).order_by("seq")
    return [(e.type, e.zone, e.line, e.direction, e.track_id, e.frame_index) for e in rows]


def kinds(found: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [row[:4] for row in found]


def test_a_walker_crosses_the_line_enters_and_dwells(
    client: APIClient, walker: str, receiver: Receiver
) -> None:
    hook = {"url": receiver.url, "secret": SECRET}
    sid = start(client, walker, webhook=hook)
    done = wait_status(client, sid, "inactive", timeout=120)
    assert done["stop_reason"] == "end_of_stream", done
    found = events(sid)
    assert kinds(found) == EXPECTED
    assert {row[4] for row in found} == {1}  # one person, one track, from 1
    assert done["counts"] == {
        "lines": {"mid": {"in": 0, "out": 1}},
        "zones": {"right": {"inside": 1, "entered": 1}},
    }
    boxes = [b for r in client.get(f"/prediction/{sid}/").json()["results"] for b in r["boxes"]]
    assert {b["track_id"] for b in boxes if b["label"] == "Normal"} <= {None, 1}
    assert any(b["track_id"] == 1 for b in boxes)
    page = client.get(f"/event/{sid}/").json()
    assert [e["seq"] for e in page["results"]] == [1, 2, 3]
    snapshot = client.get(f"/event/{sid}/1/snapshot.jpg")
    assert snapshot.status_code == 200
    assert snapshot.content.startswith(b"\xff\xd8")
    # Delivered by the orchestrator's tasks, each once, signed.
    wait_for(lambda: len(receiver.got) >= 3, 30, what="webhook deliveries")
    assert sorted(d["seq"] for d in receiver.got) == [1, 2, 3]
    assert len({d["id"] for d in receiver.got}) == 3
    wait_for(
        lambda: (
            set(Event.objects.filter(scenario_id=sid).values_list("webhook", flat=True))
            == {"delivered"}
        ),
        10,
        what="delivery recorded",
    )


def test_two_scenarios_at_once_keep_separate_tracks(client: APIClient, walker: str) -> None:
    first, second = start(client, walker), start(client, walker)
    for sid in (first, second):
        assert wait_status(client, sid, "inactive", timeout=180)["stop_reason"] == "end_of_stream"
    assert kinds(events(first)) == kinds(events(second)) == EXPECTED
    assert {row[4] for row in events(first)} == {row[4] for row in events(second)} == {1}


def test_kill_9_of_the_runner_mid_way_yields_the_same_events(
    client: APIClient, yolo_stack: Stack, walker: str
) -> None:
    reference = start(client, walker)
    wait_status(client, reference, "inactive", timeout=120)
    expected = events(reference)
    assert kinds(expected) == EXPECTED

    sid = start(client, walker)
    first = wait_status(client, sid, "active", timeout=60)
    wait_for(lambda: get(client, sid)["frames_processed"] >= 8, 60, what="progress")
    yolo_stack.signal(yolo_stack.name_of(first["runner"]), signal.SIGKILL)
    done = wait_status(client, sid, "inactive", timeout=180)
    assert done["stop_reason"] == "end_of_stream" and done["restarts"] >= 1, done
    assert events(sid) == expected  # types, zones, lines, directions, tracks and frames
    seqs = list(Event.objects.filter(scenario_id=sid).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(expected) + 1))
