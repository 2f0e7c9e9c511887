from celery import shared_task

from scenarios.services import outbox
from scenarios.services import watchdog as watchdog_service


@shared_task(name="scenarios.outbox_relay", ignore_result=True)
def outbox_relay() -> int:
    """Send outbox rows the on-commit fast path missed."""
    return outbox.outbox_relay()


@shared_task(name="scenarios.watchdog", ignore_result=True)
def watchdog() -> int:
    """Restart scenarios whose runner went silent; complete stops whose runner died."""
    return watchdog_service.watchdog_sweep()
