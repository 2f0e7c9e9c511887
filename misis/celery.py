"""The Celery app, and what each worker does when it comes up and goes down."""

import logging
import os
import threading
from typing import Any

from celery import Celery
from celery.signals import worker_ready, worker_shutting_down

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "misis.settings.local")

app = Celery("misis")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

logger = logging.getLogger(__name__)
_presence: Any = None


@worker_ready.connect
def _on_worker_ready(sender: Any, **_: Any) -> None:
    global _presence
    from misis.workers import Presence

    queues = sorted(q.name for q in sender.task_consumer.queues)
    _presence = Presence(sender.hostname, queues)
    if "inference" in queues:
        from inference.worker import start_batcher

        _presence.info = start_batcher()
    threading.Thread(target=_presence.run, name="presence", daemon=True).start()
    logger.info("worker %s (pid %s) ready on queues %s", sender.hostname, os.getpid(), queues)


@worker_shutting_down.connect
def _on_worker_shutting_down(**_: Any) -> None:
    # Runner loops run for hours: tell them to hand their scenarios over, or a warm shutdown
    # would wait for them forever.
    from runner.loop import WORKER_STOPPING

    WORKER_STOPPING.set()
    if _presence is not None:
        _presence.clear()
        if "inference" in _presence.queues:
            from inference.worker import stop_batcher

            stop_batcher()
