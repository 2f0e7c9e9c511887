"""The Redis lease: take, renew, steal by a newer epoch, fence the older holder."""

from __future__ import annotations

import time

import pytest

from misis.lease import Lease, LeaseLost, lease_holder_epoch
from misis.redis_client import get_redis

SID = "00000000-0000-0000-0000-000000000001"


def test_take_is_exclusive_per_epoch() -> None:
    first = Lease.acquire(SID, 1)
    assert first is not None and not first.stolen
    assert Lease.acquire(SID, 1) is None  # a duplicate delivery of the same start
    assert lease_holder_epoch(SID) == 1


def test_renew_extends_and_only_for_the_holder() -> None:
    lease = Lease.acquire(SID, 1, ttl=5.0)
    assert lease is not None
    assert get_redis().pttl(lease.key) <= 5000
    lease.renew(ttl=600.0)
    # Only the renewal can have set a TTL this long; no sleeps, so no race with a slow machine.
    assert get_redis().pttl(lease.key) > 300_000
    impostor = Lease(scenario_id=SID, epoch=1, token="someone-else")
    with pytest.raises(LeaseLost):
        impostor.renew()


def test_newer_epoch_steals_and_fences_the_old_holder() -> None:
    old = Lease.acquire(SID, 1)
    assert old is not None
    new = Lease.acquire(SID, 2)
    assert new is not None and new.stolen
    with pytest.raises(LeaseLost):
        old.renew()
    assert old.release() is False  # compare-and-delete leaves the new holder alone
    assert lease_holder_epoch(SID) == 2
    assert Lease.acquire(SID, 1) is None  # an older epoch never takes it back
    new.renew()
    assert new.release() is True
    assert lease_holder_epoch(SID) is None


def test_expired_lease_can_be_taken_again() -> None:
    lease = Lease.acquire(SID, 1, ttl=0.1)
    assert lease is not None
    # Waits for the expiry itself, not a guess at how long it takes on a loaded machine.
    deadline = time.monotonic() + 30
    while get_redis().exists(lease.key):
        assert time.monotonic() < deadline, "the lease never expired"
        time.sleep(0.05)
    again = Lease.acquire(SID, 1)
    assert again is not None and not again.stolen
    with pytest.raises(LeaseLost):
        lease.renew()
