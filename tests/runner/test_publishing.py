"""The runner's publish step on the real PostgreSQL and Redis: the lease is renewed first, and
an analytics state that did not change since the last publish is not written again."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pytest_django import Settings

from misis.lease import Lease, LeaseLost
from runner.publishing import Publisher
from scenarios.models import Scenario, Status
from tests.factories import make_scenario

# The publish hands its connection back to the pool: no test-wide transaction around it.
pytestmark = pytest.mark.django_db(transaction=True)

QUIET: dict[str, Any] = {"rows": [], "events": [], "feed": None, "read": 0, "counts": None}


def saved_state(s: Scenario) -> bytes:
    state = Scenario.objects.get(pk=s.pk).analytics_state
    assert state is not None
    return bytes(state)


def test_an_unchanged_state_is_not_written_again() -> None:
    s = make_scenario(Status.ACTIVE)
    lease = Lease.acquire(s.pk, s.epoch)
    assert lease is not None
    publisher = Publisher(str(s.pk), s.epoch, lease, read_from=0)
    publisher.publish(analytics_state=b"first", frontier=1, **QUIET)
    assert saved_state(s) == b"first"
    # Overwritten behind the runner's back only to see whether the next publish writes it.
    Scenario.objects.filter(pk=s.pk).update(analytics_state=b"marker")
    publisher.publish(analytics_state=b"first", frontier=2, **QUIET)
    assert saved_state(s) == b"marker"
    assert Scenario.objects.get(pk=s.pk).next_frame == 2  # the heartbeat itself went through
    publisher.publish(analytics_state=b"second", frontier=3, **QUIET)
    assert saved_state(s) == b"second"


def test_a_lost_lease_publishes_nothing() -> None:
    s = make_scenario(Status.ACTIVE)
    lease = Lease.acquire(s.pk, s.epoch)
    assert lease is not None
    assert Lease.acquire(s.pk, s.epoch + 1) is not None  # a newer runner took over
    publisher = Publisher(str(s.pk), s.epoch, lease, read_from=0)
    with pytest.raises(LeaseLost):
        publisher.publish(analytics_state=b"x", frontier=5, **QUIET)
    s.refresh_from_db()
    assert (s.next_frame, s.analytics_state, s.heartbeat_at) == (0, None, None)


def test_a_file_read_frame_by_frame_publishes_its_rows_less_often(settings: Settings) -> None:
    # A live source's rows go out after MISIS_PUBLISH_INTERVAL (each is about the newest
    # frame); a file's wait for MISIS_FILE_PUBLISH_INTERVAL (each publish is CPU taken from the
    # detector); a full batch or a heartbeat that is due goes out either way.
    settings.MISIS_PUBLISH_INTERVAL, settings.MISIS_FILE_PUBLISH_INTERVAL = 0.02, 0.25
    settings.MISIS_PUBLISH_BATCH, settings.MISIS_HEARTBEAT_INTERVAL = 50, 1.0
    s = make_scenario(Status.ACTIVE)
    lease = Lease.acquire(s.pk, s.epoch)
    assert lease is not None
    publisher = Publisher(str(s.pk), s.epoch, lease, read_from=0)
    publisher.last_publish = time.monotonic() - 0.1
    assert publisher.due(3)
    assert not publisher.due(3, every_frame=True)
    assert publisher.due(50, every_frame=True)
    assert not publisher.due(0)
    publisher.last_publish = time.monotonic() - 0.3
    assert publisher.due(3, every_frame=True)
    publisher.last_publish = time.monotonic() - 1.1
    assert publisher.due(0, every_frame=True)
