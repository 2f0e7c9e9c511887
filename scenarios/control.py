"""The stop signal from the orchestrator to the runner of one (scenario, epoch).

The database status is the truth; this Redis key only makes the runner notice a stop within
a frame instead of at its next heartbeat. A runner process reads the keys of all its
scenarios at once (``stops_requested``, runner/stop_flags.py).
"""

from __future__ import annotations

from collections.abc import Sequence

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


def stops_requested(watched: Sequence[tuple[object, int]]) -> list[bool]:
    """``stop_requested`` of each (scenario, epoch) in ``watched``, in one Redis MGET."""
    if not watched:
        return []
    raws = get_redis().mget([stop_key(scenario_id) for scenario_id, _ in watched])
    return [
        raw is not None and int(raw) >= epoch for raw, (_, epoch) in zip(raws, watched, strict=True)
    ]
