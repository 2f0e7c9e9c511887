"""The Celery app, and what each worker does when it comes up and goes down."""

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from celery import Celery, bootsteps
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "misis.settings.local")

app = Celery("misis")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

logger = logging.getLogger(__name__)
_presence: Any = None
_shut_down = False

# What the apps do when a worker comes up and goes down, registered from their AppConfig.ready
# (this module names no app). Each is called with the worker's queues; what a ready hook
# returns joins the worker's presence info (/health/).
ON_READY: list[Callable[[list[str]], dict[str, Any] | None]] = []
ON_SHUTTING_DOWN: list[Callable[[list[str]], None]] = []


@worker_ready.connect
def _on_worker_ready(sender: Any, **_: Any) -> None:
    global _presence
    from misis.workers import Presence

    consumer = sender.task_consumer
    queues = sorted(q.name for q in consumer.queues)
    _presence = Presence(
        sender.hostname, queues, consuming=lambda: [q.name for q in list(consumer.queues)]
    )
    for hook in ON_READY:
        info = hook(queues)
        if info is not None:
            _presence.info = info
    threading.Thread(target=_presence.run, name="presence", daemon=True).start()
    logger.info("worker %s (pid %s) ready on queues %s", sender.hostname, os.getpid(), queues)


def _on_worker_shutting_down(worker: Any) -> None:
    global _shut_down
    if _shut_down:  # a cold shutdown after a warm one: the hooks ran already
        return
    _shut_down = True
    if _presence is not None:
        _presence.clear()
        queues = _presence.queues  # as started: a drained queue (cancel_consumer) counts
    else:
        queues = sorted(worker.app.amqp.queues.consume_from)
    for hook in ON_SHUTTING_DOWN:
        hook(queues)


class ShutdownHooks(bootsteps.StartStopStep):
    """Runs ON_SHUTTING_DOWN on every shutdown of a worker, however it was asked for.

    SIGTERM, SIGINT, SIGQUIT and a remote ``celery control shutdown`` all end in the worker
    blueprint's stop (or terminate), but only the signals send ``worker_shutting_down``: a
    remote shutdown raises ``WorkerShutdown`` in the consumer and goes straight to stopping the
    steps. ``worker_shutdown`` comes after the pool has joined its tasks, too late for runner
    loops that never end by themselves. This step requires the pool, so it starts after it and
    stops before it: after the consumer has stopped taking messages (it is the last step, so
    the first stopped) and before the pool waits for its tasks.
    """

    requires = ("celery.worker.components:Pool",)
    label = "misis shutdown hooks"

    def stop(self, parent: Any) -> None:
        _on_worker_shutting_down(parent)

    def terminate(self, parent: Any) -> None:
        _on_worker_shutting_down(parent)


app.steps["worker"].add(ShutdownHooks)
