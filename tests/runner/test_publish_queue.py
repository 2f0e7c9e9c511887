"""The runner process's publishes written many to a transaction (runner/publish_queue.py), on
the real PostgreSQL, from real threads: publishes that wait while one is written share the next
transaction; each gets its own answer; a fenced-off or refused publish in a batch takes nothing
from the others; a batch the database refuses is written again one publish at a time."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.db import IntegrityError, connection

from misis.lease import Lease, LeaseLost
from misis.redis_client import get_redis
from runner.publish_queue import PublishQueue
from scenarios.models import Prediction, Scenario, Status
from scenarios.services.runner_writes import PublishRequest, runner_publish_many
from tests.factories import make_scenario, prediction_row
from tests.helpers import wait_for

# The writers are other threads, with connections of their own: no test-wide transaction.
pytestmark = pytest.mark.django_db(transaction=True)


def publish(s: Scenario, frame: int, **fields: Any) -> PublishRequest:
    values: dict[str, Any] = {
        "rows": [prediction_row(frame)],
        "next_frame": frame + 1,
        "fps": 1.0,
        **fields,
    }
    return PublishRequest(scenario_id=s.pk, epoch=s.epoch, **values)


_leases: dict[tuple[str, int], Lease] = {}


def lease(request: PublishRequest) -> Lease:
    """The lease of the request's (scenario, epoch), as its runner holds it: taken on first use
    (a newer epoch's takes it from an older one's, as a runner that took over does)."""
    key = (str(request.scenario_id), request.epoch)
    if key not in _leases:
        taken = Lease.acquire(*key)
        assert taken is not None
        _leases[key] = taken
    return _leases[key]


class HeldFirstWrite:
    """The real ``runner_publish_many``, but its first call waits for ``release``: the
    publishes that arrive meanwhile queue up behind it, as behind a slow commit."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls: list[int] = []
        self._first = True

    def __call__(self, requests: list[PublishRequest]) -> list[str | Exception]:
        if self._first:
            self._first = False
            assert self.release.wait(30)
        self.calls.append(len(requests))
        try:
            return runner_publish_many(requests)
        finally:
            connection.close()


def in_threads(
    queue: PublishQueue,
    write: HeldFirstWrite,
    requests: list[PublishRequest],
    before: Callable[[], object] = lambda: None,
) -> list[Any]:
    """Publish each request from a thread of its own: the first alone (held in its write),
    then the others once all of them wait; each thread's status or exception. Each of the
    others calls ``before`` first."""
    answers: list[Any] = [None] * len(requests)
    leases = [lease(r) for r in requests]

    def run(i: int) -> None:
        try:
            if i:
                before()
            answers[i] = queue.publish(requests[i], leases[i])
        except Exception as exc:
            answers[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    threads[0].start()
    wait_for(lambda: queue.transactions == 1)
    for t in threads[1:]:
        t.start()
    wait_for(lambda: queue.waiting() == len(requests) - 1)
    write.release.set()
    for t in threads:
        t.join(30)
        assert not t.is_alive()
    return answers


def test_publishes_that_wait_share_one_transaction() -> None:
    scenarios = [make_scenario(Status.ACTIVE) for _ in range(12)]
    write = HeldFirstWrite()
    queue = PublishQueue(write)
    answers = in_threads(queue, write, [publish(s, 0) for s in scenarios])
    assert answers == ["active"] * 12
    assert write.calls == [1, 11]  # the first alone, the eleven that waited in one
    assert (queue.transactions, queue.published) == (2, 12)
    for s in scenarios:
        s.refresh_from_db()
        assert (s.next_frame, s.frames_processed, s.fps) == (1, 1, 1.0)
        assert s.heartbeat_at is not None
        assert Prediction.objects.filter(scenario=s).count() == 1


def test_a_refused_publish_takes_nothing_from_the_others_in_its_transaction() -> None:
    good, fenced, seen = (make_scenario(Status.ACTIVE) for _ in range(3))
    Scenario.objects.filter(pk=fenced.pk).update(epoch=fenced.epoch + 1)  # the watchdog's bump
    runner_publish_many([publish(seen, 0, next_frame=5)])
    write = HeldFirstWrite()
    queue = PublishQueue(write)
    first = make_scenario(Status.ACTIVE)
    answers = in_threads(
        queue, write, [publish(first, 0), publish(good, 0), publish(fenced, 0), publish(seen, 3)]
    )
    assert write.calls == [1, 3]
    assert answers[:2] == ["active", "active"]
    assert isinstance(answers[2], LeaseLost)
    assert isinstance(answers[3], IntegrityError)  # frame 3 is below next_frame 5
    assert Prediction.objects.filter(scenario=good).count() == 1
    assert not Prediction.objects.filter(scenario=fenced).exists()
    assert list(Prediction.objects.filter(scenario=seen).values_list("frame_index", flat=True)) == [
        0
    ]  # the setup's
    fenced.refresh_from_db()
    assert (fenced.next_frame, fenced.heartbeat_at) == (0, None)


def test_a_transaction_the_database_refuses_is_written_again_one_publish_at_a_time() -> None:
    # frames_dropped is a PositiveBigIntegerField: a negative count breaks its CHECK constraint
    # and so the shared UPDATE; each publish is then written alone and only the bad one fails.
    scenarios = [make_scenario(Status.ACTIVE) for _ in range(4)]
    bad = make_scenario(Status.ACTIVE)
    write = HeldFirstWrite()
    queue = PublishQueue(write)
    requests = [publish(s, 0) for s in scenarios]
    requests.insert(2, publish(bad, 0, frames_dropped=-5))
    answers = in_threads(queue, write, requests)
    assert write.calls == [1, 4, 1, 1, 1, 1]  # the shared one failed, then each alone
    assert isinstance(answers[2], IntegrityError)
    assert [a for i, a in enumerate(answers) if i != 2] == ["active"] * 4
    assert Prediction.objects.filter(scenario__in=scenarios).count() == 4
    bad.refresh_from_db()
    assert (bad.next_frame, bad.frames_dropped) == (0, 0)
    assert not Prediction.objects.filter(scenario=bad).exists()


def test_two_publishes_of_one_scenario_go_in_separate_statements() -> None:
    # An old epoch's runner still winding down in the process next to the new epoch's.
    s = make_scenario(Status.ACTIVE)
    old = publish(s, 7)
    Scenario.objects.filter(pk=s.pk).update(epoch=s.epoch + 1)
    s.refresh_from_db()
    new = publish(s, 0)
    write = HeldFirstWrite()
    queue = PublishQueue(write)
    first = make_scenario(Status.ACTIVE)
    answers = in_threads(queue, write, [publish(first, 0), old, new, publish(first, 1)])
    assert isinstance(answers[1], LeaseLost)
    assert answers[2] == "active"
    assert answers[3] == "active"
    # One of the two with first@1, the other after; the old epoch's lease was taken by the new
    # one's runner, so the writer's renewal refuses it before the database sees it.
    assert write.calls in ([1, 1, 1], [1, 2])


def test_waiting_publishes_hold_no_connection_the_writer_needs() -> None:
    # Each waiting thread used the database just before (as a runner thread does when it
    # claims or activates its scenario), as many of them as the pool has connections: unless
    # they hand them back while they wait, the writer waits for the pool until it times out.
    size = settings.DATABASES["default"]["OPTIONS"]["pool"]["max_size"]
    scenarios = [make_scenario(Status.ACTIVE) for _ in range(size + 1)]
    connection.close()  # this thread's, back to the pool
    write = HeldFirstWrite()
    queue = PublishQueue(write)
    answers = in_threads(
        queue, write, [publish(s, 0) for s in scenarios], before=Scenario.objects.exists
    )
    assert answers == ["active"] * (size + 1)
    assert write.calls == [1, size]


def test_the_writer_renews_the_batchs_leases_and_writes_only_those_it_renewed() -> None:
    """One renewal for the batch (runner/publish_queue.py), with the fence of each: a publish
    whose lease is gone (expired, or taken by a newer epoch's runner) is refused with
    ``LeaseLost`` and writes nothing; the others in its batch are written, their leases
    extended."""
    scenarios = [make_scenario(Status.ACTIVE) for _ in range(4)]
    requests = [publish(s, 0) for s in scenarios]
    gone = lease(requests[2])
    held = [lease(r) for r in requests]
    redis = get_redis()
    for x in held:
        redis.pexpire(x.key, 1000)
    redis.delete(gone.key)  # as its TTL would, while its runner was paused
    write = HeldFirstWrite()
    queue = PublishQueue(write)
    answers = in_threads(queue, write, requests)
    assert answers[:2] == ["active", "active"] and answers[3] == "active"
    assert isinstance(answers[2], LeaseLost)
    assert write.calls == [1, 2]  # the first alone, then the two renewed of the three
    assert not Prediction.objects.filter(scenario=scenarios[2]).exists()
    assert redis.get(gone.key) is None  # a lost lease is not brought back
    for i in (0, 1, 3):
        assert Prediction.objects.filter(scenario=scenarios[i]).count() == 1
        assert redis.pttl(held[i].key) > 1000  # renewed to the full TTL
