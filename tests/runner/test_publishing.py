"""The runner's publish step on the real PostgreSQL and Redis: the lease is renewed first, and
an analytics state that did not change since the last publish is not written again."""

from __future__ import annotations

from typing import Any

import pytest

from misis.lease import Lease, LeaseLost
from runner.publishing import Publisher
from scenarios.models import Scenario, Status
from tests.factories import make_scenario

# The publish hands its connection back to the pool: no test-wide transaction around it.
pytestmark = pytest.mark.django_db(transaction=True)

QUIET: dict[str, Any] = {"rows": [], "events": [], "feed": None, "read": 0, "counts": None}


def saved_state(s: Scenario) -> bytes:
    return bytes(Scenario.objects.get(pk=s.pk).analytics_state)


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
