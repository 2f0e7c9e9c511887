"""The stop signal from the orchestrator to the runner of one (scenario, epoch).

The database status is the truth; this Redis key only makes the runner notice a stop within
a frame instead of at its next heartbeat.
"""

from __future__ import annotations

from misis import keys
from misis.redis_client import get_redis

STOP_TTL = 24 * 3600


def stop_key(scenario_id: object) -> str:
    return keys.stop(scenario_id)


def signal_stop(scenario_id: object, epoch: int, *, ttl: float = STOP_TTL) -> None:
    """Tell the runner of ``epoch`` (and older) to stop; the flag expires after ``ttl`` s."""
    get_redis().set(stop_key(scenario_id), epoch, px=max(1, int(ttl * 1000)))


def stop_requested(scenario_id: object, epoch: int) -> bool:
    raw = get_redis().get(stop_key(scenario_id))
    return raw is not None and int(raw) >= epoch
