"""GET /health/: no token; 200 when PostgreSQL and Redis answer, 503 otherwise."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_django import Settings
from rest_framework.test import APIClient

from misis import redis_client
from misis.redis_client import get_redis
from misis.workers import Presence, live_workers

pytestmark = pytest.mark.django_db

QUEUES = ("runner", "inference", "orchestrator")


def assert_health_shape(body: dict[str, Any]) -> None:
    assert {"database", "redis", "workers", "inference"} <= set(body), body
    assert isinstance(body["workers"], dict)
    for queue in QUEUES:
        count = body["workers"][queue]
        assert isinstance(count, int) and not isinstance(count, bool), body["workers"]
        assert count >= 0
    assert isinstance(body["inference"], dict)
    assert body["inference"]["backend"] in ("yolo", "mock")
    assert isinstance(body["inference"]["model"], str) and body["inference"]["model"]
    assert body["inference"]["runtime"] in ("openvino", "onnx", "torch", "tensorrt", "mock", "auto")


def test_health_needs_no_token_and_answers_200() -> None:
    resp = APIClient().get("/health/")

    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert_health_shape(body)
    assert body["database"] == "ok"
    assert body["redis"] == "ok"


def test_health_ignores_a_wrong_token() -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token wrong")

    resp = client.get("/health/")

    assert resp.status_code == 200, resp.content
    assert resp.json()["redis"] == "ok"


def test_health_counts_live_workers_and_names_the_detector() -> None:
    baseline = APIClient().get("/health/").json()["workers"]
    inference = Presence("inference@host", ["inference"])
    inference.info = {"backend": "yolo", "model": "best.pt", "runtime": "openvino"}
    for presence in (
        Presence("runner1@host", ["runner"]),
        Presence("runner2@host", ["runner"]),
        inference,
        Presence("orch@host", ["orchestrator"]),
    ):
        presence.beat()

    resp = APIClient().get("/health/")

    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert_health_shape(body)
    assert body["workers"] == {
        "runner": baseline["runner"] + 2,
        "inference": baseline["inference"] + 1,
        "orchestrator": baseline["orchestrator"] + 1,
    }
    if baseline["inference"] == 0:  # the only inference worker is the one written above
        assert body["inference"] == {"backend": "yolo", "model": "best.pt", "runtime": "openvino"}


def test_a_worker_that_left_or_stopped_beating_is_not_counted() -> None:
    gone = Presence("gone@host", ["runner"])
    gone.beat()
    gone.clear()
    stale = Presence("stale@host", ["runner"])
    stale.beat()
    # Its last beat is older than the TTL: the key has expired, the registry entry is stale.
    r = get_redis()
    r.delete("misis:worker:runner:stale@host")
    r.zadd("misis:workers:runner", {"stale@host": time.time() - 1})
    Presence("alive@host", ["runner"]).beat()

    assert live_workers() == {"runner": {"alive@host": {}}}
    assert r.zrange("misis:workers:runner", 0, -1) == [b"alive@host"]


def test_a_drained_queue_is_not_counted_until_it_is_consumed_again() -> None:
    # `celery control cancel_consumer runner` leaves the worker up but taking no starts:
    # /health/ then counts it for its other queues only.
    consuming = ["orchestrator", "runner"]
    worker = Presence("w@host", ["orchestrator", "runner"], consuming=lambda: consuming)
    worker.beat()
    assert set(live_workers()) == {"orchestrator", "runner"}
    consuming = ["orchestrator"]
    worker.beat()
    assert live_workers() == {"orchestrator": {"w@host": {}}}
    body = APIClient().get("/health/").json()
    assert (body["workers"]["runner"], body["workers"]["orchestrator"]) == (0, 1)
    consuming = ["orchestrator", "runner"]  # add_consumer
    worker.beat()
    assert set(live_workers()) == {"orchestrator", "runner"}


def test_health_does_not_scan_the_keyspace() -> None:
    """/health/ is public and polled: its Redis cost must not grow with the keyspace."""
    r = get_redis()
    pipe = r.pipeline(transaction=False)
    for i in range(20_000):
        pipe.set(f"misis:test-junk:{i}", b"x", ex=60)
    pipe.execute()
    Presence("runner1@host", ["runner"]).beat()
    db = r.connection_pool.connection_kwargs.get("db", 0)
    seen: list[str] = []
    done = threading.Event()

    def watch() -> None:
        # MONITOR lists every command the server runs: keep this database's, up to the marker.
        # redis-py leaves Redis.monitor() and its Monitor unannotated.
        with r.monitor() as monitor:  # type: ignore[no-untyped-call]
            ready.set()
            for entry in monitor.listen():
                if entry.get("db") != db:
                    continue
                if "health-check-done" in entry["command"]:
                    break
                seen.append(entry["command"])
        done.set()

    ready = threading.Event()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert ready.wait(5)
    time.sleep(0.2)
    resp = APIClient().get("/health/")
    r.echo("health-check-done")
    assert done.wait(10), "the monitor never saw the marker"
    r.delete(*[f"misis:test-junk:{i}" for i in range(20_000)])

    assert resp.status_code == 200
    assert resp.json()["workers"]["runner"] == 1
    verbs = [c.split()[0].upper() for c in seen if c.strip()]
    assert verbs, "the monitor saw /health/'s commands"
    assert not {"SCAN", "KEYS"} & set(verbs), verbs
    assert len(verbs) <= 12, verbs


@pytest.fixture
def redis_down(settings: Settings) -> Iterator[None]:
    """Point the process at a port where no Redis listens, with no cached client."""
    redis_client._clients.clear()
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    yield
    redis_client._clients.clear()


def test_health_is_503_when_redis_is_unreachable(redis_down: None) -> None:
    resp = APIClient().get("/health/")

    assert resp.status_code == 503, resp.content
    body = resp.json()
    assert_health_shape(body)
    assert body["database"] == "ok"
    assert body["redis"] == "error"
    assert body["workers"] == {"runner": 0, "inference": 0, "orchestrator": 0}
