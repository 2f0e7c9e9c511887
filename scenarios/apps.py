from django.apps import AppConfig


class ScenariosConfig(AppConfig):
    name = "scenarios"

    def ready(self) -> None:
        from misis.metrics import COLLECTORS
        from scenarios.metrics import collect

        COLLECTORS.append(collect)
