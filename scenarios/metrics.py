"""The scenarios' gauges on /metrics (misis/metrics.py renders them)."""

from __future__ import annotations

from django.db.models import Count, Sum

from misis import keys
from misis.metrics import Family
from misis.redis_client import as_str, get_redis
from scenarios.models import EventType, Scenario, Status
from scenarios.webhooks import OUTCOMES


def collect(family: Family) -> None:
    by_status = dict(
        Scenario.objects.values_list("status").annotate(n=Count("pk")).values_list("status", "n")
    )
    family(
        "scenarios",
        "gauge",
        "Scenarios by status",
        [(f'{{status="{s.value}"}}', by_status.get(s.value, 0)) for s in Status],
    )
    family("active_scenarios", "gauge", "Scenarios active now", [("", by_status.get("active", 0))])
    restarts = Scenario.objects.aggregate(n=Sum("restarts"))["n"] or 0
    family("restarts_total", "counter", "Runner restarts by the watchdog", [("", restarts)])

    raw = get_redis().hgetall(keys.METRICS_COUNTERS)
    counters = {as_str(k): float(v) for k, v in raw.items()}
    family(
        "events_total",
        "counter",
        "Events written, by type",
        [(f'{{type="{t}"}}', counters.get(f"events_{t}", 0.0)) for t in EventType.values],
    )
    family(
        "webhook_deliveries_total",
        "counter",
        "Webhook delivery attempts, by outcome",
        [(f'{{outcome="{o}"}}', counters.get(f"webhook_{o}", 0.0)) for o in OUTCOMES],
    )
    family("mqtt_published_total", "counter", "Events published to MQTT",
           [("", counters.get("mqtt_delivered", 0.0))])  # fmt: skip
