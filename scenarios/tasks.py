from celery import shared_task

from scenarios import services


@shared_task(name="scenarios.outbox_relay", ignore_result=True)
def outbox_relay() -> int:
    """Send outbox rows the on-commit fast path missed."""
    return services.outbox_relay()


@shared_task(name="scenarios.watchdog", ignore_result=True)
def watchdog() -> int:
    """Restart scenarios whose runner went silent; complete stops whose runner died."""
    return services.watchdog_sweep()
