"""The transactional outbox: a command's message is written in the transaction that changes
the status, sent once that commits, and sent later by ``outbox_relay`` if that send was missed.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from misis.lease import lease_holder_epoch
from scenarios.control import signal_stop
from scenarios.models import (
    STARTING_STATUSES,
    OutboxKind,
    OutboxMessage,
    Scenario,
    Status,
    StopReason,
)
from scenarios.services.transitions import finish, lock_scenario, next_deadline, start_deadline

logger = logging.getLogger(__name__)

# The runner's task (runner/tasks.py), started by name.
RUN_SCENARIO_TASK = "runner.run_scenario"


def enqueue(scenario: Scenario, kind: str, *, delay: float = 0.0) -> OutboxMessage:
    """Write an outbox row in the caller's transaction and dispatch it once that commits."""
    msg = OutboxMessage.objects.create(
        scenario=scenario,
        kind=kind,
        epoch=scenario.epoch,
        available_at=timezone.now() + timedelta(seconds=delay),
    )
    if delay <= 0:
        transaction.on_commit(lambda: _dispatch_quietly(msg.pk))
    return msg


def _dispatch_quietly(message_id: int) -> None:
    # The fast path must never fail the request that committed: the relay retries.
    try:
        outbox_dispatch(message_id=message_id)
    except Exception:
        logger.exception("outbox %s: fast dispatch failed; the relay will retry", message_id)


def outbox_dispatch(*, message_id: int) -> bool:
    """Send one outbox message unless another dispatcher has it or it was sent already.

    The row lock (skip_locked) makes the fast path and the relay mutually exclusive; the
    message is marked sent in the same transaction that sends it, so a crash before commit
    sends it again, and the runner's lease turns that duplicate into a no-op.
    """
    with transaction.atomic():
        msg = (
            OutboxMessage.objects.select_for_update(skip_locked=True)
            .filter(pk=message_id, dispatched_at__isnull=True)
            .first()
        )
        if msg is None:
            return False
        scenario = lock_scenario(msg.scenario_id)
        msg.attempts += 1
        if msg.kind == OutboxKind.START:
            _dispatch_start(scenario, msg)
        else:
            _dispatch_stop(scenario, msg)
        msg.dispatched_at = timezone.now()
        msg.save(update_fields=["attempts", "dispatched_at"])
        return True


def _dispatch_start(scenario: Scenario, msg: OutboxMessage) -> None:
    if scenario.epoch != msg.epoch or scenario.status not in STARTING_STATUSES:
        logger.info("scenario %s: start of epoch %s is obsolete", scenario.pk, msg.epoch)
        return
    if scenario.status == Status.INIT_STARTUP:
        scenario.begin_startup()
    scenario.deadline_at = start_deadline()
    scenario.save()
    # By name: the runner depends on this app, never the other way. Keyword arguments, so
    # that `celery inspect active` names the scenario each runner task serves.
    current_app.send_task(
        RUN_SCENARIO_TASK,
        kwargs={"scenario_id": str(scenario.pk), "epoch": scenario.epoch},
        queue="runner",
    )
    logger.info("scenario %s: runner task sent (epoch %s)", scenario.pk, scenario.epoch)


def _dispatch_stop(scenario: Scenario, msg: OutboxMessage) -> None:
    if scenario.status == Status.INIT_SHUTDOWN:
        scenario.begin_shutdown()
        scenario.deadline_at = next_deadline()
    if scenario.status == Status.IN_SHUTDOWN_PROCESSING:
        holder = lease_holder_epoch(scenario.pk)
        if holder is not None and holder >= scenario.epoch:
            # The runner finishes the shutdown itself once it has flushed its predictions.
            transaction.on_commit(lambda: signal_stop(scenario.pk, scenario.epoch))
        else:
            # No runner of this epoch is alive (not started yet, or dead): complete here.
            # A runner that starts later sees the status and leaves.
            finish(scenario, reason=scenario.stop_reason or StopReason.REQUESTED)
            signal_stop(scenario.pk, scenario.epoch)
    scenario.save()


def outbox_relay(*, limit: int = 500) -> int:
    """Send pending messages the fast path missed (crash between commit and dispatch)."""
    now = timezone.now()
    grace = now - timedelta(seconds=settings.MISIS_OUTBOX_RELAY_GRACE)
    ids = list(
        OutboxMessage.objects.filter(dispatched_at__isnull=True, available_at__lte=now)
        .filter(Q(created_at__lte=grace) | Q(available_at__gt=F("created_at")))
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
    sent = 0
    for message_id in ids:
        try:
            sent += outbox_dispatch(message_id=message_id)
        except Exception:
            logger.exception("outbox %s: relay dispatch failed", message_id)
    if sent:
        logger.info("outbox relay sent %d message(s)", sent)
    return sent
