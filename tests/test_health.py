"""GET /health/: no token; 200 when PostgreSQL and Redis answer, 503 otherwise."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from rest_framework.test import APIClient

from misis import redis_client
from misis.redis_client import get_redis

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
    r = get_redis()
    info = {"backend": "mock", "model": "mock-weights"}
    r.set("misis:worker:runner:runner1@host", "{}", ex=15)
    r.set("misis:worker:runner:runner2@host", "{}", ex=15)
    r.set("misis:worker:inference:inference@host", json.dumps(info), ex=15)
    r.set("misis:worker:orchestrator:orch@host", "{}", ex=15)

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
        assert body["inference"]["backend"] == "mock"
        assert body["inference"]["model"] == "mock-weights"


@pytest.fixture
def redis_down(settings: Any) -> Iterator[None]:
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
