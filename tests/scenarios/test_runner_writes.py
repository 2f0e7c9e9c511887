"""The runner's fenced publish on the real PostgreSQL: one UPDATE ... WHERE id AND epoch
RETURNING, then the inserts, in one transaction. A runner whose epoch is stale writes nothing
at all, even when the watchdog's bump commits while the publish waits for the row; counters
grow in the database; the saved state never goes back to an older frontier."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.forms.models import model_to_dict
from django.utils import timezone

from misis.lease import LeaseLost
from scenarios.event_writes import EventFacts, EventRow
from scenarios.models import Delivery, Event, Prediction, Scenario, Status
from scenarios.services import runner_writes
from scenarios.streams import StreamStatus
from tests.factories import make_scenario, prediction_row

row = prediction_row


def event(seq: int, frame: int) -> EventRow:
    facts = EventFacts(
        type="enter",
        zone="door",
        line=None,
        direction=None,
        track_id=1,
        label="person",
        confidence=0.9,
        frame_index=frame,
        pts=frame / 25,
        box={"x1": 1.0, "y1": 2.0, "x2": 3.0, "y2": 4.0},
    )
    return EventRow(seq=seq, facts=facts, captured_at=timezone.now(), snapshot="")


def everything(scenario_id: Any, epoch: int, first: int) -> dict[str, Any]:
    """A publish that touches every column it can: rows, events, state, stream, counters."""
    return {
        "scenario_id": scenario_id,
        "epoch": epoch,
        "rows": [row(first), row(first + 1)],
        "next_frame": first + 2,
        "frames_dropped": 3,
        "fps": 7.0,
        "stream": StreamStatus("connected", timezone.now(), None),
        "reconnects": 1,
        "events": [event(first + 1, first)],
        "analytics_state": f"state@{first + 2}".encode(),
        "counts": {"zones": {"door": first}},
    }


def stored(scenario_id: Any) -> dict[str, Any]:
    s = Scenario.objects.get(pk=scenario_id)
    return {**model_to_dict(s), "analytics_state": s.analytics_state and bytes(s.analytics_state)}


@pytest.mark.django_db
def test_a_stale_epoch_publishes_nothing() -> None:
    s = make_scenario(Status.ACTIVE)
    runner_writes.runner_publish(**everything(s.pk, 1, 0))
    Scenario.objects.filter(pk=s.pk).update(epoch=2)  # the watchdog moved on
    before = stored(s.pk)
    with pytest.raises(LeaseLost):
        runner_writes.runner_publish(**everything(s.pk, 1, 2))
    assert stored(s.pk) == before  # not a heartbeat, counter or state more
    assert list(Prediction.objects.values_list("frame_index", flat=True)) == [0, 1]
    assert list(Event.objects.values_list("seq", flat=True)) == [1]


@pytest.mark.django_db(transaction=True)
def test_a_publish_waiting_for_the_row_while_the_epoch_is_bumped_is_refused() -> None:
    s = make_scenario(Status.ACTIVE)
    locked, bumped = threading.Event(), threading.Event()

    def watchdog() -> None:
        try:
            with transaction.atomic():
                Scenario.objects.select_for_update().get(pk=s.pk)
                locked.set()
                bumped.wait(timeout=1.0)  # the publish below is now waiting for this row
                Scenario.objects.filter(pk=s.pk).update(epoch=2)
        finally:
            connection.close()

    thread = threading.Thread(target=watchdog)
    thread.start()
    assert locked.wait(timeout=5)
    timer = threading.Timer(0.3, bumped.set)
    timer.start()
    with pytest.raises(LeaseLost):
        runner_writes.runner_publish(**everything(s.pk, 1, 0))
    thread.join(timeout=5)
    assert not Prediction.objects.exists() and not Event.objects.exists()
    s.refresh_from_db()
    assert (s.epoch, s.frames_processed, s.next_frame, s.heartbeat_at) == (2, 0, 0, None)


@pytest.mark.django_db
def test_counters_grow_in_the_database_and_the_state_never_goes_back() -> None:
    s = make_scenario(Status.ACTIVE, params={})
    Scenario.objects.filter(pk=s.pk).update(params={"webhook": "https://hooks.example/x"})
    status = runner_writes.runner_publish(**everything(s.pk, 1, 0))
    assert status == Status.ACTIVE
    # Someone else's increment between two publishes is kept, not overwritten.
    Scenario.objects.filter(pk=s.pk).update(frames_dropped=100, failed_restarts=2)
    runner_writes.runner_publish(**everything(s.pk, 1, 2))
    s.refresh_from_db()
    assert s.analytics_state is not None and s.deadline_at is not None  # for the types
    assert (s.frames_processed, s.frames_dropped, s.reconnects) == (4, 103, 2)
    assert (s.next_frame, s.events_total, s.failed_restarts, s.fps) == (4, 3, 0, 7.0)
    assert (bytes(s.analytics_state), s.counts) == (b"state@4", {"zones": {"door": 2}})
    assert s.heartbeat_at is not None and s.deadline_at > s.heartbeat_at + timedelta(seconds=1)
    assert s.updated_at == s.heartbeat_at
    # Events get the webhook delivery the scenario's params ask for.
    assert set(Event.objects.values_list("webhook", flat=True)) == {Delivery.PENDING}

    # A heartbeat behind the frontier (a retry before the source opened) moves nothing back.
    beat = s.heartbeat_at
    runner_writes.runner_publish(
        scenario_id=s.pk, epoch=1, rows=[], next_frame=0, analytics_state=b"old", counts={}
    )
    s.refresh_from_db()
    assert (s.next_frame, bytes(s.analytics_state), s.counts) == (
        4,
        b"state@4",
        {"zones": {"door": 2}},
    )
    assert s.heartbeat_at > beat and s.frames_processed == 4
    # No state given: the saved one stays.
    runner_writes.runner_publish(scenario_id=s.pk, epoch=1, rows=[row(4)], next_frame=5)
    s.refresh_from_db()
    assert (s.next_frame, bytes(s.analytics_state), s.frames_processed) == (5, b"state@4", 5)
