"""/metrics: what runners and inference workers record, rendered for Prometheus."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from misis import metrics
from misis.redis_client import get_redis
from scenarios.models import Status
from tests.factories import make_scenario

pytestmark = pytest.mark.django_db


def parse(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_metrics_render_counters_histograms_and_gauges(staff_api: APIClient, user: User) -> None:
    make_scenario(Status.ACTIVE, owner=user)
    make_scenario(Status.INACTIVE, owner=user)
    metrics.record({"frames_read": 10, "frames_analysed": 8, "frames_dropped": 2})
    metrics.record(
        {"inference_frames": 3, "inference_batches": 1},
        {"inference_latency_seconds": 0.2, "inference_batch_size": 3},
    )
    metrics.record({}, {"inference_latency_seconds": 7.0, "inference_batch_size": 1})
    resp = staff_api.get("/metrics")
    assert resp.status_code == 200
    assert resp["Content-Type"].startswith("text/plain; version=0.0.4")
    m = parse(resp.content.decode())
    assert m["misis_frames_read_total"] == 10
    assert m["misis_frames_analysed_total"] == 8
    assert m["misis_frames_dropped_total"] == 2
    assert m["misis_inference_batches_total"] == 1
    assert m['misis_inference_latency_seconds_bucket{le="0.1"}'] == 0
    assert m['misis_inference_latency_seconds_bucket{le="0.25"}'] == 1
    assert m['misis_inference_latency_seconds_bucket{le="5.0"}'] == 1
    assert m['misis_inference_latency_seconds_bucket{le="+Inf"}'] == 2
    assert m["misis_inference_latency_seconds_count"] == 2
    assert m["misis_inference_latency_seconds_sum"] == pytest.approx(7.2)
    assert m['misis_inference_batch_size_bucket{le="1"}'] == 1
    assert m['misis_inference_batch_size_bucket{le="4"}'] == 2
    assert m['misis_scenarios{status="active"}'] == 1
    assert m['misis_scenarios{status="inactive"}'] == 1
    assert m["misis_active_scenarios"] == 1
    assert m['misis_queue_depth{queue="inference_frames"}'] == 0


def test_metrics_are_for_staff_only(api: APIClient) -> None:
    assert api.get("/metrics").status_code == 403
    assert APIClient().get("/metrics").status_code == 401


def counted(name: str) -> float:
    raw = get_redis().hget(metrics.COUNTERS_KEY, name)
    return float(raw) if raw is not None else 0.0


def test_a_tally_writes_at_most_once_an_interval_and_all_when_flushed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A runner process's publishes add their counts to its tally: one round trip a second for
    the process, not one a publish; what is left is written when a run ends (flush)."""
    before = counted("frames_read")
    tally = metrics.Tally()
    tally.add({"frames_read": 2, "frames_dropped": 0})
    assert counted("frames_read") == before  # written less than an interval ago (created)
    monkeypatch.setattr(metrics, "TALLY_INTERVAL", 0.0)
    tally.add({"frames_read": 3})
    assert counted("frames_read") == before + 5  # both adds, in one write
    monkeypatch.setattr(metrics, "TALLY_INTERVAL", 60.0)
    tally.add({"frames_read": 1})
    assert counted("frames_read") == before + 5
    tally.flush()
    assert counted("frames_read") == before + 6
    tally.flush()  # nothing left: nothing written
    assert counted("frames_read") == before + 6


def test_a_batchs_figures_go_in_the_pipeline_given() -> None:
    before = counted("inference_frames")
    pipe = get_redis().pipeline(transaction=False)
    metrics.add(pipe, {"inference_frames": 4}, {"inference_batch_size": 4})
    assert counted("inference_frames") == before  # queued, not sent
    pipe.execute()
    assert counted("inference_frames") == before + 4
    assert get_redis().hget(metrics.HIST_PREFIX + "inference_batch_size", "4") is not None
