from django.apps import AppConfig


def _hand_over(queues: list[str]) -> None:
    # Runner loops run for hours: tell them to hand their scenarios over, or a warm shutdown
    # (SIGTERM, or `celery control shutdown`) would wait for them forever. misis.celery calls
    # this before the pool waits for its tasks.
    from runner.loop import WORKER_STOPPING

    WORKER_STOPPING.set()


class RunnerConfig(AppConfig):
    name = "runner"

    def ready(self) -> None:
        from misis.celery import ON_SHUTTING_DOWN

        ON_SHUTTING_DOWN.append(_hand_over)
