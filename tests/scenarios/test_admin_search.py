"""The admin's scenario search must not be an oracle for the camera passwords in sources."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from scenarios.models import Scenario, Status
from tests.factories import make_scenario

pytestmark = pytest.mark.django_db

SOURCE = "rtsp://viewer:Tr0ub4dor@10.0.0.9:554/live?token=zz9secret"


def found(client: Client, query: str) -> list[Any]:
    resp = client.get("/admin/scenarios/scenario/", {"q": query})
    assert resp.status_code == 200
    return [s.pk for s in resp.context["cl"].result_list]


@pytest.fixture
def staff(django_user_model: type[User], client: Client) -> Client:
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    return client


@pytest.fixture
def camera(django_user_model: type[User]) -> Scenario:
    owner = django_user_model.objects.create_user("alice-owner")
    scenario = make_scenario(Status.ACTIVE, owner=owner, source=SOURCE)
    scenario.name = "lobby camera"
    scenario.save(update_fields=["name"])
    return scenario


PROBES = ["Tr0ub", "Tr0ub4dor", "Tr0", "zz9secret", "viewer:Tr0", "10.0.0.9"]


@pytest.mark.parametrize("probe", PROBES)
def test_search_cannot_probe_a_password_by_substring(
    staff: Client, camera: Scenario, probe: str
) -> None:
    # With `source` among the search fields, each guessed prefix answered with the scenario.
    assert found(staff, probe) == []


def test_search_finds_scenarios_by_id_name_and_owner(staff: Client, camera: Scenario) -> None:
    other = make_scenario(Status.INACTIVE, source="other.mp4")
    assert found(staff, "lobby") == [camera.pk]
    assert found(staff, "alice-owner") == [camera.pk]
    assert found(staff, str(camera.pk)) == [camera.pk]
    assert found(staff, str(other.pk)) == [other.pk]
