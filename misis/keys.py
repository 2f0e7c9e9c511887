"""Every Redis key the project writes, in one place: processes on many machines share them.

Celery's own keys (the broker's queues ``runner``, ``orchestrator``, ``inference``) and the
Django cache's (``CACHES["default"]["KEY_PREFIX"]``) are not listed: their owners name them.
"""

from __future__ import annotations

METRICS_COUNTERS = "misis:metrics:counters"  # hash: counter name -> total
METRICS_HISTOGRAM = "misis:metrics:hist:"  # + histogram name; hash: bucket -> count
WORKER = "misis:worker:"  # + hostname; a worker's presence, expiring
WORKERS = "misis:workers:"  # + queue; sorted set of the workers serving it
INFER_REQUESTS = "misis:infer:requests"  # list: frames waiting for the detector
INFER_REPLY = "misis:infer:reply:"  # + client id; list: its detections


def deleted_running(owner_id: object) -> str:
    """Sorted set: the owner's scenarios deleted while running, scored by when their slot of
    the quota frees (scenarios/services/commands.py)."""
    return f"misis:deleted-running:{owner_id}"


def throttle(scope: str, ident: str, window: int) -> str:
    return f"misis:throttle:{scope}:{ident}:{window}"


def lease(scenario_id: object) -> str:
    return f"misis:lease:{scenario_id}"


def preview(scenario_id: object) -> str:
    return f"misis:preview:{scenario_id}"


def preview_watched(scenario_id: object) -> str:
    """Set, with a short TTL, by every preview request: the runner encodes previews only then."""
    return f"misis:preview-watched:{scenario_id}"


def stop(scenario_id: object) -> str:
    return f"misis:stop:{scenario_id}"


# Every key above that belongs to one scenario. Deleting a scenario removes exactly these
# (scenarios/services/commands.py); a new per-scenario key is added here too, and
# tests/scenarios/test_list_delete.py fails until it is.
SCENARIO_KEY_FUNCTIONS = (lease, preview, preview_watched, stop)


def scenario_keys(scenario_id: object) -> list[str]:
    """The Redis keys of one scenario (its inference replies are keyed by the runner's client
    id, not the scenario, and expire on their own)."""
    return [key(scenario_id) for key in SCENARIO_KEY_FUNCTIONS]
