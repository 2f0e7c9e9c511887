"""The dashboard's views on the real database: login, visibility, create, commands, escaping.

Every action goes through the services and the serializer the API uses; these tests hold the
dashboard to the API's answers (same refusals, same messages, nothing created on bad input) and
try what a hostile logged-in user would: another user's scenario, a missing CSRF token, a
``<script>`` in a name.
"""

from __future__ import annotations

import html
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from pytest_django import Settings
from rest_framework.test import APIClient

from dashboard.forms import flat_errors
from scenarios.models import Event, OutboxMessage, Prediction, Scenario, Status
from sources.models import Upload
from tests.factories import make_event, make_prediction, make_scenario
from tests.helpers import streamed_body

pytestmark = pytest.mark.django_db

ZONES_AND_LINES = {
    "zones": [{"name": "door", "polygon": [[0.1, 0.2], [0.5, 0.2], [0.5, 0.9], [0.1, 0.9]]}],
    "lines": [{"name": "entry", "points": [[0.5, 0.0], [0.5, 1.0]]}],
}


def logged_in(user: User, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def csrf_token(client: Client) -> str:
    page = client.get("/").content.decode()
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert found, "the page has no CSRF token"
    return found.group(1)


def create(client: Client, **fields: Any) -> Any:
    body = {"source": "short.mp4", "name": "", "params": "", **fields}
    return client.post("/", body)


# --- logged out ---------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/", "/dashboard/state/"])
def test_logged_out_pages_redirect_to_the_login(url: str) -> None:
    resp = Client().get(url)
    assert resp.status_code == 302
    assert resp["Location"] == f"/login/?next={url}"


def test_logged_out_commands_change_nothing(user: User) -> None:
    scenario = make_scenario(Status.ACTIVE, owner=user)
    resp = Client().post(f"/dashboard/{scenario.pk}/stop/")
    assert resp.status_code == 302 and resp["Location"].startswith("/login/")
    resp = Client().post("/", {"source": "short.mp4"})
    assert resp.status_code == 302 and resp["Location"].startswith("/login/")
    scenario.refresh_from_db()
    assert scenario.status == Status.ACTIVE
    assert Scenario.objects.count() == 1


def test_login_with_a_password_opens_the_dashboard(user: User) -> None:
    client = Client(enforce_csrf_checks=True)
    page = client.get("/login/")
    assert page.status_code == 200
    assert page["Content-Security-Policy"].startswith("default-src 'self'")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
    assert token
    resp = client.post(
        "/login/",
        {"username": "alice", "password": "x", "csrfmiddlewaretoken": token.group(1), "next": "/"},
    )
    assert resp.status_code == 302 and resp["Location"] == "/"
    assert client.get("/").status_code == 200


@pytest.mark.parametrize(
    "next_url",
    ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"],
)
def test_login_never_redirects_off_site(user: User, next_url: str) -> None:
    resp = Client().post("/login/", {"username": "alice", "password": "x", "next": next_url})
    assert resp.status_code == 302
    assert resp["Location"] == "/"


def test_login_without_csrf_token_is_refused(user: User) -> None:
    client = Client(enforce_csrf_checks=True)
    resp = client.post("/login/", {"username": "alice", "password": "x"})
    assert resp.status_code == 403
    assert client.get("/").status_code == 302


def test_wrong_password_shows_the_form_again(user: User) -> None:
    resp = Client().post("/login/", {"username": "alice", "password": "wrong"})
    assert resp.status_code == 200
    assert b"did not match" in resp.content
    assert "_auth_user_id" not in Client().session


def test_login_attempts_are_throttled(settings: Settings, user: User) -> None:
    settings.MISIS_THROTTLE_LOGIN = "3/min"
    client = Client()
    codes = [
        client.post("/login/", {"username": "alice", "password": "wrong"}).status_code
        for _ in range(3)
    ]
    assert codes == [200, 200, 200]
    # Even the right password, once the window's attempts are spent.
    resp = client.post("/login/", {"username": "alice", "password": "x"})
    assert resp.status_code == 429
    assert int(resp["Retry-After"]) >= 1
    assert client.get("/").status_code == 302


def test_logout_is_a_post_with_csrf(user: User) -> None:
    client = logged_in(user, csrf=True)
    assert client.get("/logout/").status_code == 405
    assert client.post("/logout/").status_code == 403  # no token
    token = csrf_token(client)
    resp = client.post("/logout/", {"csrfmiddlewaretoken": token})
    assert resp.status_code == 302 and resp["Location"] == "/login/"
    assert client.get("/").status_code == 302


# --- the grid -----------------------------------------------------------------------------------


def test_a_user_sees_own_scenarios_and_staff_see_all(
    user: User, other_user: User, staff_user: User
) -> None:
    mine = make_scenario(owner=user, name="mine-cam")
    theirs = make_scenario(owner=other_user, name="their-cam")
    page = logged_in(user).get("/").content.decode()
    assert "mine-cam" in page and str(mine.pk) in page
    assert "their-cam" not in page and str(theirs.pk) not in page
    state = logged_in(user).get("/dashboard/state/").json()
    assert [s["id"] for s in state["scenarios"]] == [str(mine.pk)]
    staff = logged_in(staff_user).get("/dashboard/state/").json()
    assert {s["id"] for s in staff["scenarios"]} == {str(mine.pk), str(theirs.pk)}


def test_state_has_what_a_card_shows(user: User) -> None:
    scenario = make_scenario(
        Status.ACTIVE,
        owner=user,
        params=ZONES_AND_LINES,
        fps=4.5,
        frames_processed=17,
        counts={
            "lines": {"entry": {"in": 3, "out": 1}},
            "zones": {"door": {"inside": 1, "entered": 5}},
        },
    )
    resp = logged_in(user).get("/dashboard/state/")
    assert resp.status_code == 200
    assert resp["Cache-Control"] == "no-store"
    (card,) = resp.json()["scenarios"]
    assert card["status"] == "active" and card["fps"] == 4.5 and card["frames_processed"] == 17
    assert card["count_lines"] == ["line entry: in 3, out 1", "zone door: inside 1, entered 5"]
    assert card["frame_url"] == f"/scenario/{scenario.pk}/frame.jpg"
    assert card["actions"] == {
        "stop": f"/dashboard/{scenario.pk}/stop/",
        "start": f"/dashboard/{scenario.pk}/start/",
        "delete": f"/dashboard/{scenario.pk}/delete/",
    }
    assert "preview_url" not in card
    page = logged_in(user).get("/").content.decode()
    assert "line entry: in 3, out 1" in page


def test_the_grid_costs_the_same_queries_for_one_card_or_many(user: User) -> None:
    client = logged_in(user)
    make_scenario(owner=user)

    def queries(url: str) -> int:
        with CaptureQueriesContext(connection) as done:
            assert client.get(url).status_code == 200
        return len(done)

    one = {url: queries(url) for url in ("/", "/dashboard/state/")}
    for _ in range(15):
        make_scenario(owner=user)
    assert {url: queries(url) for url in one} == one


def test_user_text_is_escaped_and_credentials_redacted(user: User) -> None:
    name = '<script>alert("name")</script>'
    error = "<img src=x onerror=alert(1)> could not open"
    make_scenario(
        Status.INACTIVE,
        owner=user,
        name=name,
        source="rtsp://admin:hunter2@cam.example/stream",
        error=error,
    )
    resp = logged_in(user).get("/")
    page = resp.content.decode()
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&quot;name&quot;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "hunter2" not in page and "rtsp://admin:***@cam.example/stream" in page
    # Scripts of this origin only: an injected inline script would not run either.
    assert "script-src 'self'" in resp["Content-Security-Policy"]
    assert "<script>" not in page.replace('<script src="/static/dashboard/dashboard.js">', "")
    state = logged_in(user).get("/dashboard/state/").content.decode()
    assert "hunter2" not in state


def test_source_choices_are_samples_and_own_uploads(
    user: User, other_user: User, video_root: Path
) -> None:
    (video_root / "uploads").mkdir(exist_ok=True)
    Upload.objects.create(owner=user, source="uploads/mine.mp4", size=1)
    Upload.objects.create(owner=other_user, source="uploads/theirs.mp4", size=1)
    page = logged_in(user).get("/").content.decode()
    choices = re.findall(r'<option value="([^"]+)">', page)
    assert {"short.mp4", "loop.mp4", "people.mp4", "uploads/mine.mp4"} <= set(choices)
    assert "uploads/theirs.mp4" not in choices
    assert "notes.txt" not in choices


# --- create -------------------------------------------------------------------------------------


def test_create_with_zones_lines_and_the_convenience_fields(user: User) -> None:
    client = logged_in(user)
    resp = create(
        client,
        source="loop.mp4",
        name="lobby",
        params=json.dumps(ZONES_AND_LINES),
        target_fps="5",
        loop="1",
    )
    assert resp.status_code == 302 and resp["Location"] == "/"
    scenario = Scenario.objects.get()
    assert scenario.owner == user and scenario.name == "lobby"
    assert scenario.status == Status.INIT_STARTUP
    assert scenario.params == {**ZONES_AND_LINES, "target_fps": 5, "loop": True}
    # Started as the API starts it: a start in the outbox.
    assert OutboxMessage.objects.filter(scenario=scenario).exists()
    assert f"Scenario {scenario.pk} created." in client.get("/").content.decode()


@pytest.mark.parametrize(
    ("fields", "api_body", "field"),
    [
        ({"source": "ftp://host/x.mp4"}, {"source": "ftp://host/x.mp4"}, "source"),
        ({"source": "../etc/passwd"}, {"source": "../etc/passwd"}, "source"),
        ({"source": "  "}, {"source": "  "}, "source"),
        (
            {"params": '{"target_fps": 0}'},
            {"source": "short.mp4", "params": {"target_fps": 0}},
            "params",
        ),
        (
            {"target_fps": "fast"},
            {"source": "short.mp4", "params": {"target_fps": "fast"}},
            "params",
        ),
        ({"params": '{"colour": 1}'}, {"source": "short.mp4", "params": {"colour": 1}}, "params"),
        (
            {"params": '{"lines": [{"name": "a", "points": [[0, 0], [0, 0]]}]}'},
            {
                "source": "short.mp4",
                "params": {"lines": [{"name": "a", "points": [[0, 0], [0, 0]]}]},
            },
            "params",
        ),
        ({"params": "[1, 2]"}, {"source": "short.mp4", "params": [1, 2]}, "params"),
        ({"name": "x" * 201}, {"source": "short.mp4", "name": "x" * 201}, "name"),
    ],
)
def test_bad_input_gets_the_apis_message_and_creates_nothing(
    user: User, api: APIClient, fields: dict[str, str], api_body: dict[str, Any], field: str
) -> None:
    api_resp = api.post("/scenario/", api_body, format="json")
    assert api_resp.status_code == 400
    Scenario.objects.all().delete()
    resp = create(logged_in(user), **fields)
    assert resp.status_code == 400
    assert Scenario.objects.count() == 0
    page = resp.content.decode()
    shown = [
        html.unescape(line)
        for line in re.findall(
            rf'<p class="error field-error" data-field="{field}">([^<]*)</p>', page
        )
    ]
    # The API's messages for the same body, word for word (the page escapes them).
    assert shown == flat_errors(api_resp.json()[field])
    # The form keeps what was typed.
    if "source" in fields:
        assert f'value="{html.escape(fields["source"])}"' in page


def test_params_that_are_not_json_are_refused(user: User) -> None:
    resp = create(logged_in(user), params='{"zones": [')
    assert resp.status_code == 400
    assert Scenario.objects.count() == 0
    assert re.search(r'data-field="params">not valid JSON: ', resp.content.decode())


@pytest.mark.parametrize("text", ["[" * 100_000, '{"a": ' * 50_000, "[" * 33 + "]" * 33])
def test_params_nested_too_deep_are_refused_not_a_500(user: User, text: str) -> None:
    resp = create(logged_in(user), params=text)
    assert resp.status_code == 400
    assert Scenario.objects.count() == 0
    assert 'data-field="params">arrays and objects nested deeper than 32' in resp.content.decode()


def test_create_without_csrf_token_is_refused(user: User) -> None:
    client = logged_in(user, csrf=True)
    resp = client.post("/", {"source": "short.mp4"})
    assert resp.status_code == 403
    assert Scenario.objects.count() == 0
    resp = client.post("/", {"source": "short.mp4", "csrfmiddlewaretoken": csrf_token(client)})
    assert resp.status_code == 302
    assert Scenario.objects.count() == 1


def test_create_over_the_quota_says_so(settings: Settings, user: User) -> None:
    settings.MISIS_QUOTA_ACTIVE_SCENARIOS = 1
    client = logged_in(user)
    assert create(client).status_code == 302
    resp = create(client)
    assert resp.status_code == 400
    assert "you already have 1 active scenarios" in resp.content.decode()
    assert Scenario.objects.count() == 1


def test_another_users_upload_is_not_a_source(
    user: User, other_user: User, video_root: Path
) -> None:
    (video_root / "uploads").mkdir(exist_ok=True)
    (video_root / "uploads" / "theirs.mp4").write_bytes(b"x")
    Upload.objects.create(owner=other_user, source="uploads/theirs.mp4", size=1)
    resp = create(logged_in(user), source="uploads/theirs.mp4")
    assert resp.status_code == 400
    assert Scenario.objects.count() == 0


# --- stop and start -----------------------------------------------------------------------------


def test_stop_and_start_go_through_the_commands(user: User) -> None:
    scenario = make_scenario(Status.ACTIVE, owner=user)
    client = logged_in(user)
    resp = client.post(f"/dashboard/{scenario.pk}/stop/")
    assert resp.status_code == 302 and resp["Location"] == "/"
    scenario.refresh_from_db()
    assert scenario.status == Status.INIT_SHUTDOWN and scenario.stop_reason == "requested"
    assert f"Scenario {scenario.pk}: stop requested." in client.get("/").content.decode()
    client.post(f"/dashboard/{scenario.pk}/stop/")
    assert f"Scenario {scenario.pk}: already so." in client.get("/").content.decode()
    inactive = make_scenario(Status.INACTIVE, owner=user)
    epoch = inactive.epoch
    assert client.post(f"/dashboard/{inactive.pk}/start/").status_code == 302
    inactive.refresh_from_db()
    assert inactive.status == Status.INIT_STARTUP and inactive.epoch == epoch + 1


def test_a_command_the_state_machine_refuses_is_shown(user: User) -> None:
    scenario = make_scenario(Status.IN_SHUTDOWN_PROCESSING, owner=user)
    client = logged_in(user)
    resp = client.post(f"/dashboard/{scenario.pk}/start/", follow=True)
    assert "command not allowed" in resp.content.decode() or "not allowed from status" in (
        resp.content.decode()
    )
    scenario.refresh_from_db()
    assert scenario.status == Status.IN_SHUTDOWN_PROCESSING


@pytest.mark.parametrize("action", ["stop", "start", "delete"])
def test_another_users_scenario_is_a_404_on_every_action(
    user: User, other_user: User, action: str
) -> None:
    theirs = make_scenario(Status.ACTIVE, owner=other_user)
    idle = make_scenario(Status.INACTIVE, owner=other_user)
    client = logged_in(user)
    for scenario in (theirs, idle):
        assert client.post(f"/dashboard/{scenario.pk}/{action}/").status_code == 404
    theirs.refresh_from_db()
    idle.refresh_from_db()
    assert theirs.status == Status.ACTIVE and idle.status == Status.INACTIVE
    assert client.post(f"/dashboard/not-a-uuid/{action}/").status_code == 404
    # Exactly what a scenario that does not exist answers.
    absent = client.post(f"/dashboard/{uuid.uuid4()}/{action}/")
    mine = client.post(f"/dashboard/{theirs.pk}/{action}/")
    assert (absent.status_code, absent.content) == (404, mine.content)


def test_staff_may_stop_anyones_scenario(staff_user: User, other_user: User) -> None:
    theirs = make_scenario(Status.ACTIVE, owner=other_user)
    assert logged_in(staff_user).post(f"/dashboard/{theirs.pk}/stop/").status_code == 302
    theirs.refresh_from_db()
    assert theirs.status == Status.INIT_SHUTDOWN


@pytest.mark.parametrize("action", ["stop", "start", "delete"])
def test_commands_are_post_only_and_need_the_csrf_token(user: User, action: str) -> None:
    scenario = make_scenario(Status.INACTIVE if action == "start" else Status.ACTIVE, owner=user)
    client = logged_in(user, csrf=True)
    assert client.get(f"/dashboard/{scenario.pk}/{action}/").status_code == 405
    assert client.post(f"/dashboard/{scenario.pk}/{action}/").status_code == 403
    before = scenario.status
    scenario.refresh_from_db()
    assert scenario.status == before
    token = csrf_token(client)
    resp = client.post(f"/dashboard/{scenario.pk}/{action}/", {"csrfmiddlewaretoken": token})
    assert resp.status_code == 302
    if action == "delete":
        assert not Scenario.objects.filter(pk=scenario.pk).exists()
    else:
        scenario.refresh_from_db()
        assert scenario.status != before


def test_the_dashboards_static_files_are_collected_and_served(
    tmp_path: Path, settings: Settings
) -> None:
    """What run.sh does (collectstatic; WhiteNoise serves): no CDN, no build step."""
    from django.core.management import call_command

    settings.STATIC_ROOT = tmp_path
    call_command("collectstatic", "--no-input", verbosity=0)
    for name in ("dashboard.js", "dashboard.css"):
        resp = Client().get(f"/static/dashboard/{name}")
        assert resp.status_code == 200, name
        body = streamed_body(resp).decode()
        assert "http://" not in body and "https://" not in body


# --- delete -------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [Status.ACTIVE, Status.INACTIVE])
def test_delete_removes_the_scenario_with_its_predictions(user: User, status: str) -> None:
    scenario = make_scenario(status, owner=user, name="doomed")
    make_prediction(scenario, 0)
    make_event(scenario, 1)
    client = logged_in(user)
    resp = client.post(f"/dashboard/{scenario.pk}/delete/")
    assert resp.status_code == 302 and resp["Location"] == "/"
    assert not Scenario.objects.filter(pk=scenario.pk).exists()
    assert not Prediction.objects.filter(scenario_id=scenario.pk).exists()
    assert not Event.objects.filter(scenario_id=scenario.pk).exists()
    page = client.get("/").content.decode()
    assert f"Scenario {scenario.pk} deleted." in page and "doomed" not in page
    assert client.get("/dashboard/state/").json()["scenarios"] == []
    # Gone for the API too; deleting again is a 404.
    assert client.post(f"/dashboard/{scenario.pk}/delete/").status_code == 404


def test_staff_may_delete_anyones_scenario(staff_user: User, other_user: User) -> None:
    theirs = make_scenario(Status.INACTIVE, owner=other_user)
    assert logged_in(staff_user).post(f"/dashboard/{theirs.pk}/delete/").status_code == 302
    assert not Scenario.objects.filter(pk=theirs.pk).exists()
