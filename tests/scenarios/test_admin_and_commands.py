"""Operator entry points: the admin actions and manage.py issue_token."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from rest_framework.authtoken.models import Token

from scenarios.models import OutboxMessage, Status
from scenarios.services import runner_writes
from tests.factories import PERSON, make_scenario, prediction_row

pytestmark = pytest.mark.django_db


def test_issue_token_creates_user_and_prints_key_last() -> None:
    out = io.StringIO()
    call_command("issue_token", "carol", stdout=out, stderr=io.StringIO())
    key = out.getvalue().strip().splitlines()[-1]
    assert Token.objects.get(user__username="carol").key == key
    again = io.StringIO()
    call_command("issue_token", "carol", stdout=again, stderr=io.StringIO())
    assert again.getvalue().strip().splitlines()[-1] == key


def test_admin_is_for_staff_only(user: User, client: Client) -> None:
    client.force_login(user)
    resp = client.get("/admin/scenarios/scenario/")
    assert resp.status_code == 302 and "/admin/login/" in resp["Location"]


def test_admin_lists_and_acts_through_services(
    django_user_model: type[User], client: Client
) -> None:
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    running = make_scenario(Status.ACTIVE, owner=admin)
    stopped = make_scenario(Status.INACTIVE, owner=admin)
    page = client.get("/admin/scenarios/scenario/?status__exact=active")
    assert page.status_code == 200
    assert str(running.pk) in page.content.decode()
    assert str(stopped.pk) not in page.content.decode()

    resp = client.post(
        "/admin/scenarios/scenario/",
        {"action": "stop_scenarios", "_selected_action": [str(running.pk)]},
    )
    assert resp.status_code == 302
    running.refresh_from_db()
    assert running.status == Status.INIT_SHUTDOWN
    assert OutboxMessage.objects.filter(scenario=running, kind="stop").exists()

    client.post(
        "/admin/scenarios/scenario/",
        {"action": "start_scenarios", "_selected_action": [str(stopped.pk)]},
    )
    stopped.refresh_from_db()
    assert (stopped.status, stopped.epoch) == (Status.INIT_STARTUP, 2)
    assert client.get("/admin/scenarios/outboxmessage/").status_code == 200

    runner_writes.runner_publish(
        scenario_id=running.pk,
        epoch=running.epoch,
        rows=[prediction_row(7, boxes=[PERSON])],
        next_frame=8,
    )
    detail = client.get(f"/admin/scenarios/scenario/{running.pk}/change/").content.decode()
    assert "person 0.90" in detail and "<td>7</td>" in detail


def test_admin_and_preview_never_show_a_camera_password(
    django_user_model: type[User], client: Client
) -> None:
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    cam = make_scenario(
        Status.ACTIVE, owner=admin, source="rtsp://viewer:Tr0ub4dor@10.0.0.9:554/live?token=zz9"
    )
    pages = [
        client.get("/admin/scenarios/scenario/"),
        client.get("/admin/scenarios/scenario/?q=10.0.0.9"),
        client.get(f"/admin/scenarios/scenario/{cam.pk}/change/"),
        client.get("/admin/scenarios/outboxmessage/"),
        client.get(f"/scenario/{cam.pk}/view/"),
    ]
    for page in pages:
        assert page.status_code == 200
        text = page.content.decode()
        assert "Tr0ub4dor" not in text and "zz9" not in text
    assert "rtsp://viewer:***@10.0.0.9:554/live?token=***" in pages[0].content.decode()
    assert "rtsp://viewer:***@10.0.0.9:554/live" in pages[4].content.decode()
