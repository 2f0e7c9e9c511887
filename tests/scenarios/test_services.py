"""Services on the real database and Redis: commands, outbox, runner fence, watchdog."""

from __future__ import annotations

import dataclasses
import threading
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone
from pytest_django import DjangoCaptureOnCommitCallbacks, Settings

from misis.lease import Lease, LeaseLost
from scenarios.control import stop_requested
from scenarios.models import (
    PREDICTION_FIELDS,
    OutboxKind,
    OutboxMessage,
    Prediction,
    Scenario,
    Status,
    StopReason,
)
from scenarios.serializers import PredictionSerializer
from scenarios.services import commands, outbox, runner_writes, watchdog
from tests.conftest import queued
from tests.factories import make_scenario, prediction_row

pytestmark = pytest.mark.django_db


row = prediction_row


def test_create_writes_outbox_and_dispatches_on_commit(
    user: User, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        scenario = commands.scenario_create(owner=user, source="short.mp4", params={})
    msg = OutboxMessage.objects.get(scenario=scenario)
    assert (msg.kind, msg.epoch) == (OutboxKind.START, 1)
    assert msg.dispatched_at is not None
    scenario.refresh_from_db()
    assert scenario.status == Status.IN_STARTUP_PROCESSING
    assert queued("runner") == 1


def test_relay_sends_what_a_crash_after_commit_lost(
    user: User,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
    settings: Settings,
) -> None:
    # The transaction commits, then the process dies before its on-commit dispatch runs.
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        scenario = commands.scenario_create(owner=user, source="short.mp4")
    assert len(callbacks) == 1
    assert queued("runner") == 0
    # Within the grace period the relay leaves the row to the fast path.
    assert outbox.outbox_relay() == 0
    settings.MISIS_OUTBOX_RELAY_GRACE = 0
    assert outbox.outbox_relay() == 1
    assert outbox.outbox_relay() == 0  # sent once, never again
    assert queued("runner") == 1
    scenario.refresh_from_db()
    assert scenario.status == Status.IN_STARTUP_PROCESSING
    # The late fast path finds the row already sent.
    callbacks[0]()
    assert queued("runner") == 1


def test_relay_respects_restart_backoff(user: User, settings: Settings) -> None:
    scenario = make_scenario(Status.ACTIVE, owner=user)
    OutboxMessage.objects.update(dispatched_at=timezone.now())
    settings.MISIS_OUTBOX_RELAY_GRACE = 0
    scenario.failed_restarts = 2
    scenario.deadline_at = timezone.now() - timedelta(seconds=1)
    scenario.save()
    assert watchdog.watchdog_sweep() == 1
    msg = OutboxMessage.objects.filter(dispatched_at__isnull=True).get()
    assert msg.available_at > timezone.now() + timedelta(seconds=1)  # 2 s backoff
    assert outbox.outbox_relay() == 0
    OutboxMessage.objects.filter(pk=msg.pk).update(available_at=timezone.now())
    assert outbox.outbox_relay() == 1


def test_stop_is_idempotent_and_completes_without_a_runner(
    user: User, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    scenario = make_scenario(Status.ACTIVE, owner=user)
    with django_capture_on_commit_callbacks(execute=True):
        scenario, changed = commands.scenario_request_stop(scenario_id=scenario.pk)
    assert changed
    scenario.refresh_from_db()
    # Nobody holds the lease: the dispatcher walks it to inactive itself.
    assert scenario.status == Status.INACTIVE
    assert scenario.stop_reason == StopReason.REQUESTED
    before = OutboxMessage.objects.count()
    _, changed = commands.scenario_request_stop(scenario_id=scenario.pk)
    assert not changed
    assert OutboxMessage.objects.count() == before


def test_stop_with_a_live_runner_signals_it(
    user: User, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    scenario = make_scenario(Status.ACTIVE, owner=user)
    lease = Lease.acquire(scenario.pk, scenario.epoch)
    assert lease is not None
    with django_capture_on_commit_callbacks(execute=True):
        commands.scenario_request_stop(scenario_id=scenario.pk)
    scenario.refresh_from_db()
    assert scenario.status == Status.IN_SHUTDOWN_PROCESSING
    assert stop_requested(scenario.pk, scenario.epoch)
    runner_writes.runner_finish(
        scenario_id=scenario.pk, epoch=scenario.epoch, reason=StopReason.END_OF_STREAM
    )
    scenario.refresh_from_db()
    assert scenario.status == Status.INACTIVE
    assert scenario.stop_reason == StopReason.REQUESTED  # the user's stop wins


def test_start_again_bumps_epoch(user: User) -> None:
    scenario = make_scenario(Status.INACTIVE, owner=user)
    scenario, changed = commands.scenario_request_start(scenario_id=scenario.pk)
    assert changed
    assert (scenario.status, scenario.epoch) == (Status.INIT_STARTUP, 2)
    assert OutboxMessage.objects.filter(scenario=scenario, kind="start", epoch=2).exists()
    _, changed = commands.scenario_request_start(scenario_id=scenario.pk)
    assert not changed


@pytest.mark.parametrize("status", [Status.INIT_SHUTDOWN, Status.IN_SHUTDOWN_PROCESSING])
def test_start_refused_while_stopping(user: User, status: Status) -> None:
    scenario = make_scenario(status, owner=user)
    with pytest.raises(commands.TransitionRefused) as exc:
        commands.scenario_request_start(scenario_id=scenario.pk)
    assert exc.value.status == status


def test_obsolete_start_is_not_sent(
    user: User, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        scenario = commands.scenario_create(owner=user, source="short.mp4")
        commands.scenario_request_stop(scenario_id=scenario.pk)
    for msg in OutboxMessage.objects.order_by("id"):
        outbox.outbox_dispatch(message_id=msg.pk)
    assert queued("runner") == 0
    scenario.refresh_from_db()
    assert scenario.status == Status.INACTIVE


def test_publish_is_fenced_by_epoch(user: User) -> None:
    scenario = make_scenario(Status.ACTIVE, owner=user)
    runner_writes.runner_publish(
        scenario_id=scenario.pk, epoch=1, rows=[row(0), row(1)], next_frame=2, fps=2.0
    )
    Scenario.objects.filter(pk=scenario.pk).update(epoch=2)
    with pytest.raises(LeaseLost):
        runner_writes.runner_publish(scenario_id=scenario.pk, epoch=1, rows=[row(2)], next_frame=3)
    scenario.refresh_from_db()
    assert scenario.next_frame == 2
    assert scenario.frames_processed == 2
    assert list(Prediction.objects.values_list("frame_index", flat=True)) == [0, 1]


def test_a_published_row_is_stored_field_for_field(user: User) -> None:
    # PredictionRow, the stored row and the API's result carry the one list of fields.
    assert tuple(f.name for f in dataclasses.fields(runner_writes.PredictionRow)) == (
        PREDICTION_FIELDS
    )
    assert tuple(PredictionSerializer().fields) == PREDICTION_FIELDS
    scenario = make_scenario(Status.ACTIVE, owner=user)
    sent = dataclasses.replace(row(7), inference_ms=12.5, boxes=[{"label": "person"}])
    runner_writes.runner_publish(scenario_id=scenario.pk, epoch=1, rows=[sent], next_frame=8)
    stored = Prediction.objects.get()
    assert {name: getattr(stored, name) for name in PREDICTION_FIELDS} == dataclasses.asdict(sent)
    assert (stored.scenario_id, stored.epoch) == (scenario.pk, 1)


def test_watchdog_restarts_then_gives_up(user: User, settings: Settings) -> None:
    settings.MISIS_MAX_RESTARTS = 2
    scenario = make_scenario(Status.ACTIVE, owner=user)
    for expected_epoch in (2, 3):
        Scenario.objects.filter(pk=scenario.pk).update(
            deadline_at=timezone.now() - timedelta(seconds=1)
        )
        assert watchdog.watchdog_sweep() == 1
        scenario.refresh_from_db()
        assert scenario.status == Status.ACTIVE
        assert scenario.epoch == expected_epoch
        assert scenario.runner is None
    assert scenario.restarts == 2
    Scenario.objects.filter(pk=scenario.pk).update(deadline_at=timezone.now() - timedelta(1))
    assert watchdog.watchdog_sweep() == 1
    scenario.refresh_from_db()
    assert scenario.status == Status.INACTIVE
    assert scenario.stop_reason == StopReason.ERROR
    assert scenario.error is not None
    assert "2 times" in scenario.error


def test_watchdog_leaves_healthy_and_completes_dead_shutdowns(user: User) -> None:
    healthy = make_scenario(Status.ACTIVE, owner=user)
    dying = make_scenario(Status.IN_SHUTDOWN_PROCESSING, owner=user)
    Scenario.objects.filter(pk=dying.pk).update(deadline_at=timezone.now() - timedelta(1))
    assert watchdog.watchdog_sweep() == 1
    healthy.refresh_from_db()
    dying.refresh_from_db()
    assert (healthy.status, healthy.epoch) == (Status.ACTIVE, 1)
    assert dying.status == Status.INACTIVE


def test_progress_resets_failed_restarts(user: User) -> None:
    scenario = make_scenario(Status.ACTIVE, owner=user)
    Scenario.objects.filter(pk=scenario.pk).update(failed_restarts=3)
    runner_writes.runner_publish(scenario_id=scenario.pk, epoch=1, rows=[row(0)], next_frame=1)
    scenario.refresh_from_db()
    assert scenario.failed_restarts == 0


def test_restart_backoff_grows_and_is_capped(settings: Settings) -> None:
    settings.MISIS_RESTART_BACKOFF_BASE = 1.0
    settings.MISIS_RESTART_BACKOFF_MAX = 10.0
    assert [watchdog.restart_backoff(n) for n in range(6)] == [0, 1, 2, 4, 8, 10]


@pytest.mark.django_db(transaction=True)
def test_concurrent_dispatchers_send_once(user: User, settings: Settings) -> None:
    """The fast path and the relay race for the same row: exactly one sends it."""
    settings.MISIS_OUTBOX_RELAY_GRACE = 0
    from django.db import transaction

    with transaction.atomic():
        scenario = Scenario.objects.create(owner=user, source="short.mp4")
        msg = OutboxMessage.objects.create(
            scenario=scenario, kind="start", epoch=1, available_at=timezone.now()
        )
    barrier = threading.Barrier(4)
    results: list[bool] = []

    def dispatch() -> None:
        barrier.wait()
        try:
            results.append(outbox.outbox_dispatch(message_id=msg.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=dispatch) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]
    assert queued("runner") == 1


def test_a_start_waits_for_a_runner_up_to_the_start_timeout(
    user: User,
    settings: Settings,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    # Sent to the runner queue and not claimed yet: under load a start waits there for
    # seconds, which is no dead runner; only past MISIS_START_TIMEOUT is it sent again.
    settings.MISIS_HEARTBEAT_TIMEOUT, settings.MISIS_START_TIMEOUT = 5.0, 30.0
    with django_capture_on_commit_callbacks(execute=True):
        scenario = commands.scenario_create(owner=user, source="short.mp4")  # and sent
    scenario.refresh_from_db()
    assert scenario.status == Status.IN_STARTUP_PROCESSING
    assert scenario.deadline_at is not None
    left = (scenario.deadline_at - timezone.now()).total_seconds()
    assert 25 < left <= 30
    Scenario.objects.filter(pk=scenario.pk).update(
        deadline_at=timezone.now() + timedelta(seconds=20)  # 10 s after the dispatch
    )
    assert watchdog.watchdog_sweep() == 0
    Scenario.objects.filter(pk=scenario.pk).update(deadline_at=timezone.now() - timedelta(1))
    assert watchdog.watchdog_sweep() == 1
    scenario.refresh_from_db()
    assert (scenario.epoch, scenario.restarts, scenario.runner) == (2, 1, None)
    left = (scenario.deadline_at - timezone.now()).total_seconds()
    assert 25 < left <= 30  # the new start has the same patience
    # Once a runner claims it, the heartbeat's timeout applies.
    runner_writes.runner_claim(scenario_id=scenario.pk, epoch=2, runner="r:1")
    scenario.refresh_from_db()
    assert (scenario.deadline_at - timezone.now()).total_seconds() <= 5
