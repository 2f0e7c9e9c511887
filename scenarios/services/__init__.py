"""Everything that changes a scenario, one module per job.

* ``commands``: what the API and the admin ask for (create, start, stop), under the quota.
* ``outbox``: the commands' outbox rows, sent on commit or later by the relay.
* ``watchdog``: restarts of runners that missed their deadline, with backoff.
* ``runner_writes``: the runner's writes (claim, heartbeat and publish, finish, hand-off),
  fenced by epoch.
* ``transitions``: what they share: the row lock, the next deadline, the walk to inactive.

Each service is atomic and holds the scenario's row lock. Import from the module that does the
job (``from scenarios.services.commands import scenario_create``).
"""
