"""The Celery app, and what each worker does when it comes up and goes down."""

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from celery import Celery
from celery.signals import worker_ready, worker_shutting_down

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "misis.settings.local")

app = Celery("misis")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

logger = logging.getLogger(__name__)
_presence: Any = None

# What the apps do when a worker comes up and goes down, registered from their AppConfig.ready
# (this module names no app). Each is called with the worker's queues; what a ready hook
# returns joins the worker's presence info (/health/).
ON_READY: list[Callable[[list[str]], dict[str, Any] | None]] = []
ON_SHUTTING_DOWN: list[Callable[[list[str]], None]] = []


@worker_ready.connect
def _on_worker_ready(sender: Any, **_: Any) -> None:
    global _presence
    from misis.workers import Presence

    queues = sorted(q.name for q in sender.task_consumer.queues)
    _presence = Presence(sender.hostname, queues)
    for hook in ON_READY:
        info = hook(queues)
        if info is not None:
            _presence.info = info
    threading.Thread(target=_presence.run, name="presence", daemon=True).start()
    logger.info("worker %s (pid %s) ready on queues %s", sender.hostname, os.getpid(), queues)


@worker_shutting_down.connect
def _on_worker_shutting_down(**_: Any) -> None:
    queues = _presence.queues if _presence is not None else []
    if _presence is not None:
        _presence.clear()
    for hook in ON_SHUTTING_DOWN:
        hook(queues)
