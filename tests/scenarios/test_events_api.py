"""GET /event/<id>/: paged by seq, filtered by type, scoped to the owner; snapshots."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from sources.storage import video_storage
from tests.factories import make_event, make_scenario

pytestmark = pytest.mark.django_db


def test_events_page_by_seq_with_next_and_type_filter(api: Any, user: User) -> None:
    scenario = make_scenario(owner=user)
    for seq in range(1, 6):
        make_event(scenario, seq, **({"type": "zone_enter", "zone": "door", "line": None,
                                      "direction": None} if seq % 2 else {}))  # fmt: skip
    first = api.get(f"/event/{scenario.pk}/?limit=2").json()
    assert [e["seq"] for e in first["results"]] == [1, 2]
    assert "after=2" in first["next"] and "limit=2" in first["next"]
    rest = api.get(f"/event/{scenario.pk}/?after=2").json()
    assert [e["seq"] for e in rest["results"]] == [3, 4, 5] and rest["next"] is None
    enters = api.get(f"/event/{scenario.pk}/?type=zone_enter").json()["results"]
    assert [(e["seq"], e["zone"], e["line"]) for e in enters] == [
        (1, "door", None), (3, "door", None), (5, "door", None)
    ]  # fmt: skip
    event = rest["results"][0]
    assert set(event) == {
        "id", "seq", "type", "zone", "line", "direction", "track_id", "label", "confidence",
        "frame_index", "pts", "captured_at", "box", "snapshot", "webhook",
    }  # fmt: skip


@pytest.mark.parametrize("query", ["type=explosion", "limit=0", "limit=1001", "after=x"])
def test_bad_event_queries_answer_400(api: Any, user: User, query: str) -> None:
    scenario = make_scenario(owner=user)
    assert api.get(f"/event/{scenario.pk}/?{query}").status_code == 400


def test_another_users_events_do_not_exist(api: Any, other_user: User) -> None:
    scenario = make_scenario(owner=other_user)
    make_event(scenario, 1, snapshot="snapshots/x/1.jpg")
    assert api.get(f"/event/{scenario.pk}/").status_code == 404
    assert api.get(f"/event/{scenario.pk}/1/snapshot.jpg").status_code == 404


def test_snapshot_is_served_and_a_missing_one_is_404(api: Any, user: User) -> None:
    scenario = make_scenario(owner=user)
    name = f"snapshots/{scenario.pk}/1.jpg"
    from django.core.files.base import ContentFile

    stored = video_storage().save(name, ContentFile(b"\xff\xd8jpeg-bytes"))
    make_event(scenario, 1, snapshot=stored)
    make_event(scenario, 2)
    answer = api.get(f"/event/{scenario.pk}/1/snapshot.jpg")
    assert answer.status_code == 200 and answer["Content-Type"] == "image/jpeg"
    assert answer.content.startswith(b"\xff\xd8")
    listed = api.get(f"/event/{scenario.pk}/").json()["results"]
    assert listed[0]["snapshot"].endswith(f"/event/{scenario.pk}/1/snapshot.jpg")
    assert listed[1]["snapshot"] is None
    assert api.get(f"/event/{scenario.pk}/2/snapshot.jpg").status_code == 404
    assert api.get(f"/event/{scenario.pk}/9/snapshot.jpg").status_code == 404
    video_storage().delete(stored)
