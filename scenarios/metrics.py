"""The scenarios' gauges on /metrics (misis/metrics.py renders them)."""

from __future__ import annotations

from django.db.models import Count, Sum

from misis.metrics import Family
from scenarios.models import Scenario, Status


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
