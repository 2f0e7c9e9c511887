from typing import Any

from django.apps import AppConfig


def _start(queues: list[str]) -> dict[str, Any] | None:
    if "inference" not in queues:
        return None
    from inference.worker import start_batcher

    return start_batcher()


def _stop(queues: list[str]) -> None:
    if "inference" in queues:
        from inference.worker import stop_batcher

        stop_batcher()


class InferenceConfig(AppConfig):
    name = "inference"

    def ready(self) -> None:
        from misis.celery import ON_READY, ON_SHUTTING_DOWN

        ON_READY.append(_start)
        ON_SHUTTING_DOWN.append(_stop)
