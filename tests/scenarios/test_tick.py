"""The orchestrator's tick: one beat entry runs the outbox relay, the watchdog and deliveries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from pytest_django import Settings

from scenarios import tasks
from scenarios.models import OutboxMessage, Scenario, Status
from scenarios.services import outbox
from tests.conftest import queued
from tests.factories import make_scenario

pytestmark = pytest.mark.django_db


def test_beat_runs_one_frequent_entry_the_tick_on_the_orchestrator_queue(
    settings: Settings,
) -> None:
    from misis.celery import app

    frequent = {
        name: entry
        for name, entry in settings.CELERY_BEAT_SCHEDULE.items()
        if entry["schedule"] <= 60
    }
    assert list(frequent) == ["tick"]
    assert frequent["tick"]["task"] == "scenarios.tick"
    assert frequent["tick"]["schedule"] == settings.MISIS_TICK_INTERVAL
    assert app.amqp.router.route({}, "scenarios.tick")["queue"].name == "orchestrator"


def test_a_tick_relays_the_outbox_and_sweeps_for_dead_runners(
    user: User, settings: Settings
) -> None:
    settings.MISIS_OUTBOX_RELAY_GRACE = 0
    waiting = make_scenario(Status.INIT_STARTUP, owner=user)  # its start not yet sent
    dead = make_scenario(Status.IN_SHUTDOWN_PROCESSING, owner=user)
    OutboxMessage.objects.filter(scenario=dead).update(dispatched_at=timezone.now())
    Scenario.objects.filter(pk=dead.pk).update(deadline_at=timezone.now() - timedelta(1))

    done = tasks.tick.apply().get()

    assert done == {"outbox_relay": 1, "watchdog": 1, "delivery_relay": 0}
    waiting.refresh_from_db()
    dead.refresh_from_db()
    assert waiting.status == Status.IN_STARTUP_PROCESSING
    assert queued("runner") == 1
    assert dead.status == Status.INACTIVE


def test_a_job_that_fails_is_logged_and_the_others_still_run(
    user: User,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(**_: object) -> int:
        raise ConnectionError("relay's database went away")

    monkeypatch.setattr(outbox, "outbox_relay", broken)
    dead = make_scenario(Status.IN_SHUTDOWN_PROCESSING, owner=user)
    Scenario.objects.filter(pk=dead.pk).update(deadline_at=timezone.now() - timedelta(1))

    done = tasks.tick.apply().get()

    assert done == {"outbox_relay": None, "watchdog": 1, "delivery_relay": 0}
    dead.refresh_from_db()
    assert dead.status == Status.INACTIVE
    failed = [r for r in caplog.records if "tick: outbox_relay failed" in r.getMessage()]
    assert failed and failed[0].exc_info is not None
    assert "relay's database went away" in str(failed[0].exc_info[1])
