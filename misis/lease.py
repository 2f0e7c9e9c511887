"""The per-scenario lease in Redis: one holder at a time, newer epochs win.

The value is ``"<epoch>:<token>"``. A holder only ever renews or releases its own value
(compare-and-extend, compare-and-delete), so a runner that was paused past its TTL cannot
touch the lease of the runner that replaced it. A runner of a newer epoch may take the lease
from an older one before it expires (the watchdog already declared the older one dead); the
older one finds out at its next renewal. The database write fence (``scenarios.services``)
backs this up for the window between a renewal and a write.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.conf import settings

from misis import keys
from misis.redis_client import as_bytes, get_redis

logger = logging.getLogger(__name__)

_ACQUIRE = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local cur_epoch = tonumber(string.match(cur, '^(%d+):'))
  if cur_epoch ~= nil and cur_epoch >= tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
if cur then return 2 end
return 1
"""
# Renew each lease of KEYS whose value is its ARGV (after the TTL, ARGV[1]): 1 renewed, 0 lost.
_RENEW = """
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i + 1] then
    out[i] = redis.call('PEXPIRE', key, ARGV[1])
  else
    out[i] = 0
  end
end
return out
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class LeaseLost(Exception):
    """The holder no longer owns the lease (or its epoch is fenced off); it must stop at once."""


def lease_key(scenario_id: object) -> str:
    return keys.lease(scenario_id)


@dataclass
class Lease:
    scenario_id: str
    epoch: int
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    stolen: bool = False

    @property
    def value(self) -> str:
        return f"{self.epoch}:{self.token}"

    @property
    def key(self) -> str:
        return lease_key(self.scenario_id)

    @classmethod
    def acquire(cls, scenario_id: object, epoch: int, ttl: float | None = None) -> Lease | None:
        """Take the lease for ``epoch``; None when a holder of this or a newer epoch has it."""
        lease = cls(scenario_id=str(scenario_id), epoch=epoch)
        res = get_redis().eval(_ACQUIRE, 1, lease.key, lease.value, epoch, _ms(ttl))
        if not res:
            return None
        lease.stolen = res == 2
        if lease.stolen:
            logger.warning(
                "scenario %s: lease taken over from an older epoch by epoch %s",
                scenario_id,
                epoch,
            )
        return lease

    def renew(self, ttl: float | None = None) -> None:
        if not renew_all([self], ttl)[0]:
            raise self.lost()

    def lost(self) -> LeaseLost:
        return LeaseLost(f"scenario {self.scenario_id}: lease of epoch {self.epoch} lost")

    def release(self) -> bool:
        return bool(get_redis().eval(_RELEASE, 1, self.key, self.value))


def renew_all(leases: Sequence[Lease], ttl: float | None = None) -> list[bool]:
    """Renew each lease its holder still holds, all in one round trip (a runner process renews
    the leases of the publishes it writes together); for each, whether it was renewed."""
    if not leases:
        return []
    renewed = get_redis().eval(
        _RENEW, len(leases), *(lease.key for lease in leases), _ms(ttl), *(x.value for x in leases)
    )
    return [bool(r) for r in renewed]


def lease_holder_epoch(scenario_id: object) -> int | None:
    """Epoch of whoever holds the lease now, or None. For display and stop routing only."""
    raw = get_redis().get(lease_key(scenario_id))
    if raw is None:
        return None
    return int(as_bytes(raw).split(b":", 1)[0])


def _ms(ttl: float | None) -> int:
    return int((settings.MISIS_LEASE_TTL if ttl is None else ttl) * 1000)
