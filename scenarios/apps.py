from django.apps import AppConfig


class ScenariosConfig(AppConfig):
    name = "scenarios"

    def ready(self) -> None:
        from misis.metrics import COLLECTORS
        from scenarios.metrics import collect

        COLLECTORS.append(collect)

        from django.contrib.auth import get_user_model
        from django.db.models.signals import pre_delete

        from scenarios.services.commands import delete_owned_scenarios

        # A user's scenarios go through the scenario delete before the cascade reaches them.
        pre_delete.connect(
            delete_owned_scenarios, sender=get_user_model(), dispatch_uid="scenarios-of-a-user"
        )
