"""The few API calls the integration tests make, through an authenticated APIClient."""

from __future__ import annotations

from typing import Any, cast

from rest_framework.test import APIClient

from testbed.stack import wait_for


def get(client: APIClient, sid: str) -> dict[str, Any]:
    resp = client.get(f"/scenario/{sid}/")
    assert resp.status_code == 200
    return dict(resp.json())


def create(client: APIClient, source: str, **params: object) -> str:
    resp = client.post("/scenario/", {"source": source, "params": params}, format="json")
    assert resp.status_code == 201, resp.content
    return str(resp.json()["id"])


def wait_status(client: APIClient, sid: str, status: str, timeout: float = 30) -> dict[str, Any]:
    return cast(
        "dict[str, Any]",
        wait_for(lambda: (d := get(client, sid))["status"] == status and d, timeout, what=status),
    )


def stop(client: APIClient, sid: str, timeout: float = 20) -> dict[str, Any]:
    client.post(f"/scenario/{sid}/", {"status": "init_shutdown"}, format="json")
    return wait_status(client, sid, "inactive", timeout=timeout)
