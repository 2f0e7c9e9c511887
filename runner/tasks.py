from celery import shared_task

from runner import loop
from scenarios.services.outbox import RUN_SCENARIO_TASK


@shared_task(name=RUN_SCENARIO_TASK, ignore_result=True, acks_late=False)
def run_scenario(scenario_id: str, epoch: int) -> None:
    """Run one scenario for as long as it lives. Idempotent: a duplicate returns at once."""
    loop.run_scenario(scenario_id, epoch)
