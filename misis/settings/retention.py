"""How long predictions and events are kept (MISIS_RETENTION), and how the durations that say
so are written (``7d``, ``12h``, ``90m``). Imported by base.py; scenarios/params.py checks a
scenario's ``params.retention`` with the same parser."""

import re
from datetime import timedelta

from django.core.exceptions import ImproperlyConfigured

from misis.settings.env import env

_UNITS = {"d": "days", "h": "hours", "m": "minutes"}
_DURATION = re.compile(r"([1-9][0-9]{0,5})([dhm])")


def parse_duration(text: str) -> timedelta:
    """``<n>d``, ``<n>h`` or ``<n>m`` (n from 1 to 999999); ValueError says what is wrong."""
    # fullmatch: `$` would also match before a trailing newline ("7d\n").
    match = _DURATION.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 7d, 12h or 90m")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def _retention(name: str, default: str) -> timedelta:
    raw = env(name, default=default)
    try:
        value = parse_duration(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None
    if value < timedelta(hours=1):
        raise ImproperlyConfigured(f"{name}: {raw!r} is shorter than 1h")
    return value


# Predictions and events older than this are removed: whole daily partitions, dropped once
# every row in them is older (so a row lives between MISIS_RETENTION and one day more).
MISIS_RETENTION: timedelta = _retention("MISIS_RETENTION", "7d")
# How often the retention task runs (seconds); it also creates the partitions ahead.
MISIS_RETENTION_INTERVAL: float = env.float("MISIS_RETENTION_INTERVAL", default=600.0)
# Daily partitions created ahead of today: inserts find one even after days without the task.
MISIS_PARTITIONS_AHEAD: int = env.int("MISIS_PARTITIONS_AHEAD", default=7)
# Rows deleted per statement when a scenario's params.retention is shorter.
MISIS_RETENTION_BATCH: int = env.int("MISIS_RETENTION_BATCH", default=5000)
# How long a partition's CREATE or DROP waits for its lock (seconds) before it gives up until
# the next run: the writers queued behind it wait at most this long.
MISIS_RETENTION_LOCK_TIMEOUT: float = env.float("MISIS_RETENTION_LOCK_TIMEOUT", default=2.0)
