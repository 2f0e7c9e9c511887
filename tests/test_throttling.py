"""API throttling, counted in Redis."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import User
from pytest_django import Settings
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

if TYPE_CHECKING:
    from django.http import HttpResponseBase
    from django.test import Client

pytestmark = pytest.mark.django_db


def test_a_user_over_the_rate_gets_429(
    api: APIClient, other_api: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
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


def test_health_is_never_throttled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"user": "1/min", "anon": "1/min"})
    client = APIClient()
    assert [client.get("/health/").status_code for _ in range(3)] == [200, 200, 200]


# --- the client's address: X-Forwarded-For is believed only behind MISIS_NUM_PROXIES proxies ---


def test_x_forwarded_for_is_ignored_by_default() -> None:
    from rest_framework.settings import api_settings

    assert api_settings.NUM_PROXIES == 0


def test_spoofing_x_forwarded_for_does_not_dodge_the_anon_throttle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"user": "3/min", "anon": "3/min"})
    client = APIClient()
    codes = [
        client.get("/api/docs/", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}").status_code
        for i in range(5)
    ]
    assert codes == [200, 200, 200, 429, 429]
    # Another real address is counted on its own.
    assert client.get("/api/docs/", REMOTE_ADDR="198.51.100.7").status_code == 200


def test_behind_one_proxy_the_address_it_saw_counts(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"user": "3/min", "anon": "3/min"})
    client = APIClient()  # REMOTE_ADDR 127.0.0.1: the proxy

    def get(xff: str) -> int:
        return client.get("/api/docs/", HTTP_X_FORWARDED_FOR=xff).status_code

    # The client writes what it likes on the left; the proxy appends the address it saw.
    codes = [get(f"10.9.9.{i}, 192.0.2.10") for i in range(4)]
    assert codes == [200, 200, 200, 429]
    assert get("192.0.2.11") == 200  # another client behind the same proxy


# --- /admin/login/: MISIS_THROTTLE_LOGIN per client address and per username --------------------


def login(client: Client, username: str, password: str = "wrong", **extra: Any) -> HttpResponseBase:
    return client.post("/admin/login/", {"username": username, "password": password}, **extra)


def test_admin_login_attempts_are_throttled_per_address(
    settings: Settings, staff_user: User
) -> None:
    from django.test import Client

    settings.MISIS_THROTTLE_LOGIN = "3/min"
    client = Client()
    codes = [
        login(client, f"guess{i}", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}").status_code
        for i in range(4)
    ]
    assert codes == [200, 200, 200, 429]
    refused = login(client, "ops", "x")  # even the right password, from this address
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert "_auth_user_id" not in client.session
    # The form itself is still shown; another address may log in.
    assert client.get("/admin/login/").status_code == 200
    other = Client(REMOTE_ADDR="198.51.100.7")
    assert login(other, "ops", "x").status_code == 302
    assert other.session["_auth_user_id"] == str(staff_user.pk)


def test_admin_login_attempts_are_throttled_per_username(
    settings: Settings, staff_user: User
) -> None:
    from django.test import Client

    settings.MISIS_THROTTLE_LOGIN = "3/min"
    codes = [login(Client(REMOTE_ADDR=f"198.51.100.{i}"), "ops").status_code for i in range(4)]
    assert codes == [200, 200, 200, 429]
    # Another username from a fresh address is not held back.
    assert login(Client(REMOTE_ADDR="198.51.100.50"), "bob").status_code == 200


def test_the_default_login_rate(settings: Settings) -> None:
    assert settings.MISIS_THROTTLE_LOGIN == "10/min"
