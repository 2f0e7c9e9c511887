"""Prometheus metrics for the whole cluster, served by the API at /metrics.

Runners and inference workers are many processes on many machines, so they do not serve
metrics themselves: they add to counters and histogram buckets in Redis, and the API renders
those plus gauges read from PostgreSQL and Redis in the Prometheus text format. An inference
worker adds its batch's figures in the round trip that answers the batch; a runner process
adds its publishes' counts to the process's tally (``tally``), written at most once every
``TALLY_INTERVAL`` (a round trip a second for the process rather than one a publish: 250
1-fps scenarios made 250 a second) and when a scenario's run ends.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable

from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from redis.client import Pipeline
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.views import APIView

from misis import keys
from misis.redis_client import as_str, get_redis

logger = logging.getLogger(__name__)

COUNTERS_KEY = keys.METRICS_COUNTERS
HIST_PREFIX = keys.METRICS_HISTOGRAM

COUNTERS = {
    "frames_read": "Frames read from sources",
    "frames_analysed": "Frames whose predictions were published",
    "frames_dropped": "Live frames dropped because the detector was busy",
    "frames_skipped": "Sampled frames kept from the detector because nothing moved",
    "inference_frames": "Frames run through the detector",
    "inference_batches": "Detector calls (batches)",
    "source_reconnects": "Live streams reopened after they dropped out",
}
HISTOGRAMS = {
    "inference_latency_seconds": (
        "Detector time per batch",
        (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    ),
    "inference_batch_size": ("Frames per detector batch", (1, 2, 4, 8, 16, 32)),
}


def _bucket(name: str, value: float) -> str:
    for bound in HISTOGRAMS[name][1]:
        if value <= bound:
            return str(bound)
    return "+Inf"


def record(
    counters: dict[str, float] | None = None, observations: dict[str, float] | None = None
) -> None:
    """Add to counters and observe histogram values, in one round trip; never fails the caller."""
    try:
        pipe = get_redis().pipeline(transaction=False)
        add(pipe, counters, observations)
        pipe.execute()
    except Exception:
        logger.warning("metrics: could not record", exc_info=True)


def add(
    pipe: Pipeline,
    counters: dict[str, float] | None = None,
    observations: dict[str, float] | None = None,
) -> None:
    """``record``'s commands, queued on the caller's pipeline (written when it executes it)."""
    for name, value in (counters or {}).items():
        if value:
            pipe.hincrbyfloat(COUNTERS_KEY, name, value)
    for name, value in (observations or {}).items():
        key = HIST_PREFIX + name
        pipe.hincrby(key, _bucket(name, value), 1)
        pipe.hincrbyfloat(key, "sum", value)
        pipe.hincrby(key, "count", 1)


TALLY_INTERVAL = 1.0  # seconds a process's tally may hold counts before they are written


class Tally:
    """Counters added in this process and not yet written: the call that finds the last write
    ``TALLY_INTERVAL`` old or more writes everything added since, in one round trip. A process
    that is killed loses at most that long's counts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: defaultdict[str, float] = defaultdict(float)
        self._written = time.monotonic()
        self._pid = os.getpid()

    def add(self, counters: dict[str, float]) -> None:
        with self._lock:
            if self._pid != os.getpid():  # a forked child: its parent's counts are not its own
                self._pending, self._pid = defaultdict(float), os.getpid()
            for name, value in counters.items():
                if value:
                    self._pending[name] += value
            if time.monotonic() - self._written < TALLY_INTERVAL:
                return
        self.flush()

    def flush(self) -> None:
        """Write what was added (if anything) now."""
        with self._lock:
            taken, self._pending = self._pending, defaultdict(float)
            self._written = time.monotonic()
        if taken:
            record(dict(taken))


_TALLY = Tally()  # the process's one
tally = _TALLY.add
flush_tally = _TALLY.flush


def _fmt(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


# Gauges of the apps' own state (scenarios by status...), registered from AppConfig.ready: this
# module, below the apps, names none of them.
Family = Callable[[str, str, str, Iterable[tuple[str, float]]], None]
COLLECTORS: list[Callable[[Family], None]] = []


def render() -> str:
    r = get_redis()
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: Iterable[tuple[str, float]]) -> None:
        lines.append(f"# HELP misis_{name} {help_text}")
        lines.append(f"# TYPE misis_{name} {kind}")
        lines.extend(f"misis_{name}{labels} {_fmt(v)}" for labels, v in samples)

    counters = {as_str(k): float(v) for k, v in r.hgetall(COUNTERS_KEY).items()}
    for name, help_text in COUNTERS.items():
        family(f"{name}_total", "counter", help_text, [("", counters.get(name, 0.0))])

    for name, (help_text, bounds) in HISTOGRAMS.items():
        raw = {as_str(k): float(v) for k, v in r.hgetall(HIST_PREFIX + name).items()}
        samples, running = [], 0.0
        for bound in [*map(str, bounds), "+Inf"]:
            running += raw.get(bound, 0.0)
            samples.append((f'_bucket{{le="{bound}"}}', running))
        samples += [("_sum", raw.get("sum", 0.0)), ("_count", raw.get("count", 0.0))]
        lines.append(f"# HELP misis_{name} {help_text}")
        lines.append(f"# TYPE misis_{name} histogram")
        lines.extend(f"misis_{name}{suffix} {_fmt(v)}" for suffix, v in samples)

    for collect in COLLECTORS:
        collect(family)
    queues = {
        "runner": "runner",
        "orchestrator": "orchestrator",
        "inference_tasks": "inference",
        "inference_frames": keys.INFER_REQUESTS,
    }
    family(
        "queue_depth",
        "gauge",
        "Messages or frames waiting",
        [(f'{{queue="{name}"}}', r.llen(key)) for name, key in queues.items()],
    )
    return "\n".join(lines) + "\n"


@extend_schema(exclude=True)  # for Prometheus, not for API clients
class MetricsApi(APIView):
    """GET /metrics: Prometheus text format; staff tokens only (it spans every user)."""

    permission_classes = [IsAdminUser]

    def get(self, request: Request) -> HttpResponse:
        return HttpResponse(render(), content_type="text/plain; version=0.0.4; charset=utf-8")
