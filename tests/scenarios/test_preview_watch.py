"""Preview frames are encoded only while someone allowed to see them watches (real Redis)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from misis import keys
from misis.lease import Lease
from misis.redis_client import get_redis
from scenarios import preview
from scenarios.models import Scenario
from scenarios.preview_links import preview_link_sign
from tests.factories import make_scenario

pytestmark = pytest.mark.django_db

BOXES = [
    {"x1": 10, "y1": 10, "x2": 40, "y2": 30, "label": "person", "confidence": 0.9, "class_id": 0}
]


@pytest.fixture
def scenario(user: User) -> Iterator[Scenario]:
    """A scenario whose runner holds the lease: a preview is stored only under one."""
    s = make_scenario(owner=user)
    lease = Lease.acquire(s.pk, s.epoch)
    assert lease is not None
    yield s
    lease.release()


def image() -> np.ndarray:
    return np.full((48, 64, 3), 90, dtype=np.uint8)


def watched(scenario: Scenario) -> bool:
    return bool(get_redis().exists(keys.preview_watched(scenario.pk)))


def offer_for(writer: preview.PreviewWriter, seconds: float) -> None:
    """Offer frames at about 25 a second, as a busy runner would."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        writer.offer(image(), BOXES)
        time.sleep(0.04)


def test_nothing_is_encoded_while_nobody_watches(scenario: Scenario) -> None:
    writer = preview.PreviewWriter(str(scenario.pk))
    offer_for(writer, 1.5)
    assert writer.encoded == 0
    assert preview.latest_frame(scenario.pk) is None


def test_a_frame_request_starts_encoding_within_the_check_interval(
    api: APIClient, scenario: Scenario
) -> None:
    writer = preview.PreviewWriter(str(scenario.pk))
    writer.offer(image(), BOXES)  # unwatched: looked up, and remembered for a second
    first = api.get(f"/scenario/{scenario.pk}/frame.jpg")
    assert first.status_code == 404  # the first request finds no frame yet
    assert watched(scenario)
    assert 0 < get_redis().ttl(keys.preview_watched(scenario.pk)) <= preview.WATCH_TTL
    writer.offer(image(), BOXES)
    assert writer.encoded == 0  # the mark is read at most once a WATCH_CHECK_INTERVAL
    time.sleep(preview.WATCH_CHECK_INTERVAL + 0.05)
    offer_for(writer, 1.0)
    assert 1 <= writer.encoded <= preview.MAX_RATE * 1.0 + 1
    fresh = api.get(f"/scenario/{scenario.pk}/frame.jpg")
    assert fresh.status_code == 200 and fresh["Content-Type"] == "image/jpeg"


def test_encoding_stops_when_the_mark_expires(api: APIClient, scenario: Scenario) -> None:
    assert api.get(f"/scenario/{scenario.pk}/view/").status_code == 200  # the page marks too
    writer = preview.PreviewWriter(str(scenario.pk))
    offer_for(writer, 0.3)
    assert writer.encoded >= 1
    get_redis().delete(keys.preview_watched(scenario.pk))  # as its TTL would
    time.sleep(preview.WATCH_CHECK_INTERVAL + 0.05)
    encoded = writer.encoded
    offer_for(writer, 0.5)
    assert writer.encoded == encoded


def test_a_stranger_cannot_mark_someone_elses_scenario(
    other_api: APIClient, user: User, other_user: User, scenario: Scenario
) -> None:
    """Every refused preview request leaves the scenario unwatched: no encoding on demand of
    someone who may not see it."""
    theirs = make_scenario(owner=other_user)
    second = make_scenario(owner=user)
    attempts = [
        (other_api, f"/scenario/{scenario.pk}/frame.jpg", 404),
        (other_api, f"/scenario/{scenario.pk}/view/", 404),
        (APIClient(), f"/scenario/{scenario.pk}/frame.jpg", 401),
        (APIClient(HTTP_AUTHORIZATION="Token nope"), f"/scenario/{scenario.pk}/view/", 401),
        # A link of another user's scenario, and of another scenario of the same owner.
        (
            APIClient(),
            f"/scenario/{scenario.pk}/frame.jpg?sig={preview_link_sign(scenario=theirs)}",
            404,
        ),
        (
            APIClient(),
            f"/scenario/{scenario.pk}/view/?sig={preview_link_sign(scenario=second)}",
            404,
        ),
        (APIClient(), f"/scenario/{scenario.pk}/frame.jpg?sig=forged:value", 403),
    ]
    for client, url, status in attempts:
        assert client.get(url).status_code == status, url
    assert not watched(scenario)
    # The owner's own link does mark it.
    own = APIClient().get(
        f"/scenario/{scenario.pk}/frame.jpg?sig={preview_link_sign(scenario=scenario)}"
    )
    assert own.status_code == 404  # no frame yet, but watched now
    assert watched(scenario)
