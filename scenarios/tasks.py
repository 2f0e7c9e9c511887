import logging
from collections.abc import Callable

from celery import shared_task

from scenarios.services import commands, outbox
from scenarios.services import watchdog as watchdog_service

logger = logging.getLogger(__name__)


@shared_task(name="scenarios.outbox_relay", ignore_result=True)
def outbox_relay() -> int:
    """Send outbox rows the on-commit fast path missed."""
    return outbox.outbox_relay()


@shared_task(name="scenarios.watchdog", ignore_result=True)
def watchdog() -> int:
    """Restart scenarios whose runner went silent; complete stops whose runner died."""
    return watchdog_service.watchdog_sweep()


@shared_task(name="scenarios.tick", ignore_result=True)
def tick() -> dict[str, int | None]:
    """The orchestrator's periodic pass (beat's one frequent entry): the outbox relay, the
    watchdog, then webhook retries and MQTT. A job that fails is logged and gives None; the
    others still run, and the next tick runs it again."""
    jobs: dict[str, Callable[[], int]] = {
        "outbox_relay": outbox_relay,
        "watchdog": watchdog,
        "delivery_relay": delivery_relay,
    }
    done: dict[str, int | None] = {}
    for name, job in jobs.items():
        try:
            done[name] = job()
        except Exception:
            logger.exception("tick: %s failed; the next tick runs it again", name)
            done[name] = None
    return done


@shared_task(name="scenarios.deliver_event", ignore_result=True)
def deliver_event(event_id: str) -> None:
    """One webhook delivery attempt; returns quietly when the event is not due or done."""
    from scenarios.webhooks import deliver

    deliver(event_id)


@shared_task(name="scenarios.delivery_relay", ignore_result=True)
def delivery_relay() -> int:
    """Webhook retries that are due, and MQTT publishing of pending events."""
    from scenarios.mqtt import mqtt_relay
    from scenarios.webhooks import webhook_relay

    return webhook_relay() + mqtt_relay()


@shared_task(name="scenarios.purge_scenario", ignore_result=True)
def purge_scenario(scenario_id: str) -> bool:
    """Sweep a deleted scenario's Redis keys and stored snapshots once more, after any runner
    of it has left (sent by ``delete_scenario``); does nothing for a scenario that exists."""
    return commands.scenario_purge(scenario_id=scenario_id)


@shared_task(name="scenarios.retention", ignore_result=True)
def retention() -> dict[str, int]:
    """Partitions ahead, expired partitions dropped, shorter per-scenario retention applied."""
    from scenarios.retention import sweep

    return sweep()
