"""API throttling, counted in Redis."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

pytestmark = pytest.mark.django_db


def test_a_user_over_the_rate_gets_429(api: APIClient, other_api: APIClient, monkeypatch) -> None:
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"user": "3/min", "anon": "3/min"})
    codes = [
        api.get("/scenario/00000000-0000-0000-0000-000000000000/").status_code for _ in range(4)
    ]
    assert codes == [404, 404, 404, 429]
    limited = api.get("/prediction/00000000-0000-0000-0000-000000000000/")
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) > 0
    # Counted per user: another user is not held back.
    assert other_api.get("/scenario/00000000-0000-0000-0000-000000000000/").status_code == 404


def test_health_is_never_throttled(monkeypatch) -> None:
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"user": "1/min", "anon": "1/min"})
    client = APIClient()
    assert [client.get("/health/").status_code for _ in range(3)] == [200, 200, 200]
