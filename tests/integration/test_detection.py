"""Real detection end to end: a video of people through the API, the YOLO inference worker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from inference.backends.yolo import cpu_threads, default_model_path
from inference.runtime_choice import choice_path
from testbed.stack import Stack, wait_for
from tests.conftest import client_for

pytestmark = pytest.mark.integration


@pytest.fixture
def client(yolo_stack: Stack, transactional_db: None, django_user_model: type[User]) -> APIClient:
    return client_for(django_user_model.objects.create_user(username="det"))


def test_people_video_is_detected_through_the_api(client: APIClient) -> None:
    health = wait_for(
        lambda: (b := client.get("/health/").json())["workers"]["inference"] == 1 and b,
        60,
        what="inference worker up",
    )
    assert health["inference"]["backend"] == "yolo"
    assert health["inference"]["model"].endswith("best.pt")
    # auto, the default: the runtime measured faster for these weights on this CPU.
    choice = choice_path(
        Path(default_model_path()),
        Path(settings.MISIS_MODEL_CACHE),
        cpu_threads(settings.MISIS_INFERENCE_THREADS or None),
        settings.MISIS_MAX_BATCH,
    )
    assert health["inference"]["runtime"] == json.loads(choice.read_text())["runtime"]

    resp = client.post("/scenario/", {"source": "people.mp4"}, format="json")
    assert resp.status_code == 201
    sid = resp.json()["id"]
    done = wait_for(
        lambda: (d := client.get(f"/scenario/{sid}/").json())["status"] == "inactive" and d,
        90,
        what="end of stream",
    )
    assert done["stop_reason"] == "end_of_stream", done
    results = client.get(f"/prediction/{sid}/").json()["results"]
    assert [r["frame_index"] for r in results] == list(range(6))
    for r in results:
        assert (r["width"], r["height"]) == (640, 480)
        people = [b for b in r["boxes"] if b["label"] == "Normal"]
        # Frames 0-2 show bus.jpg (4 people), frames 3-5 zidane.jpg (2 people).
        assert len(people) >= (3 if r["frame_index"] < 3 else 2), r
        for b in r["boxes"]:
            assert 0 <= b["x1"] < b["x2"] <= 640 and 0 <= b["y1"] < b["y2"] <= 480
            assert b["class_id"] in (0, 1)
        assert r["inference_ms"] > 0
