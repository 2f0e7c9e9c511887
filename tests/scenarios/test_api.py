"""The scenario and prediction endpoints, checked against the contract (docs/API.md).

Runs against the real PostgreSQL and Redis. Inside a ``django_db`` test the transaction never
commits, so the outbox's on-commit dispatch does not run unless a test asks for it with
``django_capture_on_commit_callbacks(execute=True)``.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from scenarios.models import (
    PREDICTION_FIELDS,
    OutboxKind,
    OutboxMessage,
    Prediction,
    Scenario,
    Status,
    StopReason,
)
from tests.conftest import queued
from tests.factories import make_scenario
from tests.helpers import token_key

pytestmark = pytest.mark.django_db

SCENARIO_FIELDS = {
    "id",
    "name",
    "source",
    "params",
    "status",
    "created_at",
    "updated_at",
    "started_at",
    "runner",
    "heartbeat_at",
    "frames_processed",
    "fps",
    "restarts",
    "stop_reason",
    "error",
}
PAGE_FIELDS = {"scenario_id", "status", "next", "results"}
RESULT_FIELDS = set(PREDICTION_FIELDS)
BOX_FIELDS = {"label", "class_id", "confidence", "x1", "y1", "x2", "y2"}


# --- helpers --------------------------------------------------------------------------------


def same_answer(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two answers about one unchanged scenario: equal but for ``preview_url``, a signed link
    made fresh for each answer (its timestamp moves on), to the same page."""
    a, b = dict(a), dict(b)
    link_a, link_b = a.pop("preview_url"), b.pop("preview_url")
    assert link_a.split("?")[0] == link_b.split("?")[0]
    return a == b


def scenario_url(scenario_id: object) -> str:
    return f"/scenario/{scenario_id}/"


def prediction_url(scenario_id: object, **query: object) -> str:
    url = f"/prediction/{scenario_id}/"
    return f"{url}?{urlencode(query)}" if query else url


def rows() -> tuple[int, int]:
    """(scenarios, outbox messages) in the database: what a refused request must not change."""
    return Scenario.objects.count(), OutboxMessage.objects.count()


def create(api: APIClient, body: Any) -> Any:
    return api.post("/scenario/", body, format="json")


def command(api: APIClient, scenario_id: object, body: Any) -> Any:
    return api.post(scenario_url(scenario_id), body, format="json")


def parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, f"{value!r} has no time zone"
    return parsed


def assert_scenario_shape(body: dict[str, Any]) -> None:
    missing = SCENARIO_FIELDS - set(body)
    assert not missing, f"scenario lacks {sorted(missing)}: {body}"
    uuid.UUID(body["id"])
    assert body["status"] in set(Status)
    assert isinstance(body["params"], dict)
    parse_time(body["created_at"])
    parse_time(body["updated_at"])
    for key in ("started_at", "heartbeat_at"):
        assert body[key] is None or parse_time(body[key])
    assert isinstance(body["frames_processed"], int)
    assert isinstance(body["restarts"], int)
    assert isinstance(body["fps"], int | float)
    assert body["stop_reason"] in (None, "requested", "end_of_stream", "error")


# --- POST /scenario/: accepted --------------------------------------------------------------


def test_create_answers_201_with_the_scenario_in_init_startup(api: APIClient, user: User) -> None:
    params = {
        "target_fps": 5,
        "confidence": 0.25,
        "classes": ["person"],
        "imgsz": 640,
        "loop": False,
        "reconnect_timeout": 60,
    }
    resp = create(api, {"source": "rtsp://cam/stream", "name": "front door", "params": params})

    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert_scenario_shape(body)
    assert body["status"] == "init_startup"
    assert body["name"] == "front door"
    assert body["source"] == "rtsp://cam/stream"
    assert body["params"] == params
    assert body["started_at"] is None
    assert body["runner"] is None
    assert body["heartbeat_at"] is None
    assert body["frames_processed"] == 0
    assert body["fps"] == 0
    assert body["restarts"] == 0
    assert body["stop_reason"] is None
    assert body["error"] is None

    scenario = Scenario.objects.get()
    assert str(scenario.pk) == body["id"]
    assert scenario.owner_id == user.pk
    assert scenario.status == Status.INIT_STARTUP
    assert scenario.params == params
    outbox = OutboxMessage.objects.get()
    assert outbox.scenario_id == scenario.pk
    assert outbox.kind == OutboxKind.START
    assert outbox.epoch == scenario.epoch
    assert outbox.dispatched_at is None  # the transaction of this test never commits


def test_create_with_only_a_source_defaults_name_and_params(api: APIClient) -> None:
    resp = create(api, {"source": "short.mp4"})

    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert body["status"] == "init_startup"
    assert body["source"] == "short.mp4"
    assert body["params"] == {}
    assert body["name"] == ""
    assert rows() == (1, 1)


def test_created_scenario_reads_back_the_same(api: APIClient) -> None:
    created = create(api, {"source": "https://example.com/v.mp4", "name": "n"}).json()

    resp = api.get(scenario_url(created["id"]))

    assert resp.status_code == 200
    assert same_answer(resp.json(), created)


def test_create_dispatches_the_start_on_commit(
    api: APIClient, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        resp = create(api, {"source": "short.mp4"})

    assert resp.status_code == 201, resp.content
    assert len(callbacks) == 1
    assert queued("runner") == 1
    assert OutboxMessage.objects.get().dispatched_at is not None
    assert Scenario.objects.get().status == Status.IN_STARTUP_PROCESSING


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        ("rtsp://cam/stream", "rtsp://cam/stream"),
        ("rtsp://user:pass@10.0.0.5:554/h264", "rtsp://user:***@10.0.0.5:554/h264"),
        ("rtsps://cam:322/stream", "rtsps://cam:322/stream"),
        ("http://cam.local/video.mjpg", "http://cam.local/video.mjpg"),
        ("http://cam.local/v.cgi?user=a&pwd=b", "http://cam.local/v.cgi?user=a&pwd=***"),
        ("https://example.com/clips/v.mp4", "https://example.com/clips/v.mp4"),
        ("onvif://user:pass@cam", "onvif://user:***@cam"),
        ("onvif://user:pass@cam:8080/profile_2", "onvif://user:***@cam:8080/profile_2"),
        ("short.mp4", "short.mp4"),
        ("long.mp4", "long.mp4"),
    ],
)
def test_create_accepts_every_supported_source(api: APIClient, source: str, shown: str) -> None:
    resp = create(api, {"source": source})

    assert resp.status_code == 201, resp.content
    # Stored as given (the runner needs the password); shown masked in every answer.
    assert resp.json()["source"] == shown
    assert api.get(f"/scenario/{resp.json()['id']}/").json()["source"] == shown
    assert Scenario.objects.get().source == source
    assert OutboxMessage.objects.filter(kind=OutboxKind.START).count() == 1


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"target_fps": 240},
        {"target_fps": 0.5},
        {"confidence": 0},
        {"confidence": 1},
        {"confidence": 0.5},
        {"classes": ["person", "car"]},
        {"imgsz": 32},
        {"imgsz": 4096},
        {"loop": True},
        {"reconnect_timeout": 0.5},
        {"reconnect_timeout": 86400},
    ],
)
def test_create_accepts_params_in_range(api: APIClient, params: dict[str, Any]) -> None:
    resp = create(api, {"source": "short.mp4", "params": params})

    assert resp.status_code == 201, resp.content
    assert resp.json()["params"] == params
    assert Scenario.objects.get().params == params


# --- POST /scenario/: refused -------------------------------------------------------------


def assert_refused(resp: Any, field: str, param: str | None = None) -> None:
    """400 with a JSON body naming ``field`` (and ``param`` inside ``params``); nothing made."""
    assert resp.status_code == 400, resp.content
    assert resp["Content-Type"].startswith("application/json")
    body = resp.json()
    assert isinstance(body, dict)
    assert field in body, f"the error does not name {field!r}: {body}"
    if param is not None:
        assert isinstance(body[field], dict) and param in body[field], body
    assert rows() == (0, 0)
    assert queued("runner") == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "source"),
        ({"name": "no source"}, "source"),
        ({"source": ""}, "source"),
        ({"source": "   "}, "source"),
        ({"source": None}, "source"),
        ({"source": ["rtsp://cam/stream"]}, "source"),
        ({"source": "ftp://host/video.mp4"}, "source"),
        ({"source": "file:///etc/passwd"}, "source"),
        ({"source": "file://short.mp4"}, "source"),
        ({"source": "smb://host/share/video.mp4"}, "source"),
        ({"source": "s3://bucket/key.mp4"}, "source"),  # no object storage configured
        ({"source": "onvif://user:pw@cam/a/b"}, "source"),
        ({"source": "rtsp://169.254.169.254/latest"}, "source"),  # the metadata service
        ({"source": "rtsp://cam/a\nb"}, "source"),
        ({"source": "rtsp://"}, "source"),
        ({"source": "rtsp:stream"}, "source"),
        ({"source": "/etc/passwd"}, "source"),
        ({"source": "/short.mp4"}, "source"),
        ({"source": "../short.mp4"}, "source"),
        ({"source": "sub/../short.mp4"}, "source"),
        ({"source": "sub/../../etc/passwd"}, "source"),
        ({"source": "bad\x00.mp4"}, "source"),
        ({"source": "x" * 3000}, "source"),
        ({"source": 5}, "source"),
        ({"source": "."}, "source"),
        ({"source": "short.mp4", "name": 5}, "name"),
        ({"source": "short.mp4", "owner": 1}, "owner"),
        ({"source": "short.mp4", "status": "active"}, "status"),
        ({"source": "short.mp4", "name": None}, "name"),
        ({"source": "short.mp4", "name": "n" * 201}, "name"),
        ({"source": "short.mp4", "params": "target_fps=5"}, "params"),
        ({"source": "short.mp4", "params": [1, 2]}, "params"),
        ({"source": "short.mp4", "params": 5}, "params"),
    ],
)
def test_create_refuses_bad_input(api: APIClient, body: dict[str, Any], field: str) -> None:
    assert_refused(create(api, body), field)


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("target_fps", 0),
        ("target_fps", -1),
        ("target_fps", 241),
        ("target_fps", "5"),
        ("target_fps", True),
        ("target_fps", None),
        ("confidence", 1.5),
        ("confidence", -0.1),
        ("confidence", "0.5"),
        ("classes", "person"),
        ("classes", [1]),
        ("classes", [""]),
        ("classes", ["   "]),
        ("classes", {"person": True}),
        ("imgsz", 0),
        ("imgsz", "640"),
        ("imgsz", 31),
        ("imgsz", 4097),
        ("imgsz", 640.5),
        ("imgsz", True),
        ("loop", "yes"),
        ("loop", 1),
        ("reconnect_timeout", 0),
        ("reconnect_timeout", -5),
        ("reconnect_timeout", "60"),
        ("reconnect_timeout", 86401),
        ("unknown_key", 1),
        ("fps", 5),
    ],
)
def test_create_refuses_a_bad_param(api: APIClient, param: str, value: Any) -> None:
    resp = create(api, {"source": "short.mp4", "params": {param: value}})

    assert_refused(resp, "params", param)


def test_create_names_every_bad_param(api: APIClient) -> None:
    resp = create(api, {"source": "short.mp4", "params": {"imgsz": 1, "loop": "no", "x": 1}})

    assert_refused(resp, "params")
    assert set(resp.json()["params"]) == {"imgsz", "loop", "x"}


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ("this is not json", "application/json"),
        ('{"source": "short.mp4"', "application/json"),
        ('{"source": NaN}', "application/json"),
        ('"short.mp4"', "application/json"),
        ('["short.mp4"]', "application/json"),
        ("null", "application/json"),
        ("42", "application/json"),
        (urlencode({"source": "short.mp4"}), "application/x-www-form-urlencoded"),
        ("source=short.mp4", "text/plain"),
    ],
)
def test_create_refuses_a_body_that_is_not_a_json_object(
    api: APIClient, data: str, content_type: str
) -> None:
    resp = api.post("/scenario/", data=data, content_type=content_type)

    assert resp.status_code == 400, resp.content
    assert isinstance(resp.json(), dict) and resp.json()
    assert rows() == (0, 0)


def test_create_refuses_a_multipart_form(api: APIClient) -> None:
    resp = api.post("/scenario/", {"source": "short.mp4"}, format="multipart")

    assert resp.status_code == 400, resp.content
    assert isinstance(resp.json(), dict)
    assert rows() == (0, 0)


def test_create_refuses_an_empty_body(api: APIClient) -> None:
    resp = api.post("/scenario/", data="", content_type="application/json")

    assert_refused(resp, "source")


@pytest.fixture
def escaping_links(video_root: Path, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Symlinks inside the video root that point outside it; removed afterwards."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.mp4").write_bytes(b"not for you")
    file_link = video_root / "escape.mp4"
    dir_link = video_root / "escape_dir"
    file_link.symlink_to(outside / "secret.mp4")
    dir_link.symlink_to(outside, target_is_directory=True)
    try:
        yield {"file": file_link.name, "dir": f"{dir_link.name}/secret.mp4"}
    finally:
        file_link.unlink()
        dir_link.unlink()


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_create_refuses_a_symlink_that_leaves_the_video_root(
    api: APIClient, escaping_links: dict[str, str], kind: str
) -> None:
    assert_refused(create(api, {"source": escaping_links[kind]}), "source")


def test_create_accepts_a_symlink_that_stays_in_the_video_root(
    api: APIClient, video_root: Path
) -> None:
    link = video_root / "alias.mp4"
    link.symlink_to(video_root / "short.mp4")
    try:
        resp = create(api, {"source": "alias.mp4"})
    finally:
        link.unlink()

    assert resp.status_code == 201, resp.content


# --- authentication and ownership ---------------------------------------------------------


def endpoints(scenario_id: object) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("post", "/scenario/", {"source": "short.mp4"}),
        ("get", scenario_url(scenario_id), None),
        ("post", scenario_url(scenario_id), {"status": "init_shutdown"}),
        ("get", prediction_url(scenario_id), None),
    ]


def inactive_user_token() -> str:
    user = get_user_model().objects.create_user(username="gone", password="x", is_active=False)
    return token_key(Token.objects.create(user=user))


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Token wrong",
        "Token 0123456789abcdef0123456789abcdef01234567",
        "Token",
        "Token a b",
        "Bearer {valid}",
        "{valid}",
        "Token {inactive}",
    ],
)
def test_every_endpoint_needs_a_valid_token(user: User, header: str | None) -> None:
    scenario = make_scenario(owner=user, name="cam")
    valid = Token.objects.create(user=user).key
    inactive = inactive_user_token()
    before = rows()
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header.format(valid=valid, inactive=inactive))

    for method, url, body in endpoints(scenario.pk):
        resp = getattr(client, method)(url, body, format="json")
        assert resp.status_code == 401, (method, url, resp.content)
        assert "detail" in resp.json()

    assert rows() == before
    scenario.refresh_from_db()
    assert scenario.status == Status.INIT_STARTUP


def test_another_users_scenario_is_invisible(user: User, other_api: APIClient) -> None:
    scenario = make_scenario(owner=user, name="cam")
    Prediction.objects.bulk_create(prediction_rows(scenario, [0, 1, 2]))
    before = rows()

    assert other_api.get(scenario_url(scenario.pk)).status_code == 404
    assert other_api.get(prediction_url(scenario.pk)).status_code == 404
    # Whatever the query carries: a bad cursor is a 400 only on a scenario one may see.
    assert other_api.get(prediction_url(scenario.pk, after=-2, limit=0)).status_code == 404
    for body in ({"status": "init_shutdown"}, {"status": "init_startup"}, {"status": "bogus"}):
        resp = command(other_api, scenario.pk, body)
        assert resp.status_code == 404, (body, resp.content)

    assert rows() == before
    scenario.refresh_from_db()
    assert scenario.status == Status.INIT_STARTUP


def test_another_users_page_is_never_read(user: User, other_user: User) -> None:
    """GET /prediction/ is one query (the scenario's row and the page joined): for a scenario
    the caller may not see, PostgreSQL reads none of its predictions (no time spent on them
    that a 404 could betray), while its owner's page reads them."""
    from django.db import connection

    from scenarios.selectors import prediction_page_query

    scenario = make_scenario(owner=user, name="cam")
    Prediction.objects.bulk_create(prediction_rows(scenario, list(range(50))))

    def plan(who: User) -> str:
        sql, params = prediction_page_query(user=who, scenario_id=scenario.pk, after=-1, limit=10)
        with connection.cursor() as cur:
            cur.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + sql, params)
            return "\n".join(row[0] for row in cur.fetchall())

    stranger = plan(other_user)
    assert "Aggregate (never executed)" in stranger, stranger
    assert "Index Scan using scenarios_prediction" in stranger  # the page is in the plan...
    assert "rows=10 " not in stranger  # ...and was not run
    owner = plan(user)
    assert "Aggregate (actual rows=1 " in owner and "rows=10 " in owner, owner


def test_staff_see_and_command_every_scenario(user: User, staff_api: APIClient) -> None:
    scenario = make_scenario(owner=user, name="cam")
    Prediction.objects.bulk_create(prediction_rows(scenario, [0, 1, 2]))

    resp = staff_api.get(scenario_url(scenario.pk))
    assert resp.status_code == 200
    assert resp.json()["id"] == str(scenario.pk)

    resp = staff_api.get(prediction_url(scenario.pk))
    assert resp.status_code == 200
    assert [r["frame_index"] for r in resp.json()["results"]] == [0, 1, 2]

    resp = command(staff_api, scenario.pk, {"status": "init_shutdown"})
    assert resp.status_code == 202
    assert resp.json()["status"] == "init_shutdown"


def test_a_users_own_scenario_is_visible(api: APIClient, user: User) -> None:
    scenario = make_scenario(owner=user, name="cam")

    resp = api.get(scenario_url(scenario.pk))

    assert resp.status_code == 200
    assert_scenario_shape(resp.json())
    assert resp.json()["id"] == str(scenario.pk)


@pytest.mark.parametrize(
    "scenario_id",
    ["abc", "123", "not-a-uuid", "00000000-0000-0000-0000-00000000000g", str(uuid.uuid4())],
)
def test_an_unknown_or_malformed_id_is_404(api: APIClient, user: User, scenario_id: str) -> None:
    make_scenario(owner=user, name="cam")
    before = rows()

    assert api.get(scenario_url(scenario_id)).status_code == 404
    assert command(api, scenario_id, {"status": "init_shutdown"}).status_code == 404
    assert api.get(prediction_url(scenario_id)).status_code == 404
    assert rows() == before


# --- POST /scenario/<id>/: commands -------------------------------------------------------


def outbox_kinds(scenario: Scenario) -> list[tuple[str, int]]:
    return list(scenario.outbox.order_by("id").values_list("kind", "epoch"))


def test_stop_from_init_startup_is_accepted(api: APIClient, user: User) -> None:
    scenario = make_scenario(owner=user, name="cam")

    resp = command(api, scenario.pk, {"status": "init_shutdown"})

    assert resp.status_code == 202, resp.content
    body = resp.json()
    assert_scenario_shape(body)
    assert body["id"] == str(scenario.pk)
    assert body["status"] == "init_shutdown"
    scenario.refresh_from_db()
    assert scenario.status == Status.INIT_SHUTDOWN
    assert outbox_kinds(scenario) == [(OutboxKind.START, 1), (OutboxKind.STOP, 1)]


def test_repeated_stop_answers_200_and_changes_nothing(api: APIClient, user: User) -> None:
    scenario = make_scenario(owner=user, name="cam")
    first = command(api, scenario.pk, {"status": "init_shutdown"})
    assert first.status_code == 202
    before = rows()

    second = command(api, scenario.pk, {"status": "init_shutdown"})

    assert second.status_code == 200, second.content
    assert same_answer(second.json(), first.json())
    assert same_answer(api.get(scenario_url(scenario.pk)).json(), first.json())
    assert rows() == before


@pytest.mark.parametrize("status", [Status.IN_STARTUP_PROCESSING, Status.ACTIVE])
def test_stop_of_a_running_scenario_is_accepted(api: APIClient, user: User, status: str) -> None:
    scenario = make_scenario(owner=user, name="cam", status=status)

    resp = command(api, scenario.pk, {"status": "init_shutdown"})

    assert resp.status_code == 202, resp.content
    assert resp.json()["status"] == "init_shutdown"
    assert outbox_kinds(scenario)[-1] == (OutboxKind.STOP, scenario.epoch)


@pytest.mark.parametrize(
    "status", [Status.INIT_SHUTDOWN, Status.IN_SHUTDOWN_PROCESSING, Status.INACTIVE]
)
def test_stop_under_way_or_done_answers_200(api: APIClient, user: User, status: str) -> None:
    scenario = make_scenario(owner=user, name="cam", status=status)
    shown = api.get(scenario_url(scenario.pk)).json()
    before = rows()

    resp = command(api, scenario.pk, {"status": "init_shutdown"})

    assert resp.status_code == 200, resp.content
    assert same_answer(resp.json(), shown)
    assert rows() == before


@pytest.mark.parametrize(
    "status", [Status.INIT_STARTUP, Status.IN_STARTUP_PROCESSING, Status.ACTIVE]
)
def test_start_under_way_or_done_answers_200(api: APIClient, user: User, status: str) -> None:
    scenario = make_scenario(owner=user, name="cam", status=status)
    shown = api.get(scenario_url(scenario.pk)).json()
    before = rows()

    resp = command(api, scenario.pk, {"status": "init_startup"})

    assert resp.status_code == 200, resp.content
    assert same_answer(resp.json(), shown)
    assert resp.json()["status"] == status
    assert rows() == before


@pytest.mark.parametrize("status", [Status.INIT_SHUTDOWN, Status.IN_SHUTDOWN_PROCESSING])
def test_start_while_stopping_is_a_conflict(api: APIClient, user: User, status: str) -> None:
    scenario = make_scenario(owner=user, name="cam", status=status)
    before = rows()

    resp = command(api, scenario.pk, {"status": "init_startup"})

    assert resp.status_code == 409, resp.content
    assert resp.json()["status"] == status
    assert status in resp.content.decode()
    scenario.refresh_from_db()
    assert scenario.status == status
    assert rows() == before


def test_start_after_inactive_is_accepted_under_a_new_epoch(api: APIClient, user: User) -> None:
    scenario = make_scenario(
        owner=user,
        name="cam",
        status=Status.INACTIVE,
        stop_reason=StopReason.ERROR,
        error="cannot open source",
        runner="h:1",
    )
    epoch = scenario.epoch

    resp = command(api, scenario.pk, {"status": "init_startup"})

    assert resp.status_code == 202, resp.content
    body = resp.json()
    assert_scenario_shape(body)
    assert body["status"] == "init_startup"
    assert body["stop_reason"] is None
    assert body["error"] is None
    assert body["runner"] is None
    scenario.refresh_from_db()
    assert scenario.status == Status.INIT_STARTUP
    assert scenario.epoch == epoch + 1
    assert outbox_kinds(scenario)[-1] == (OutboxKind.START, epoch + 1)

    again = command(api, scenario.pk, {"status": "init_startup"})
    assert again.status_code == 200
    assert same_answer(again.json(), body)


def test_stop_then_start_round_trip(
    api: APIClient, user: User, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    """Dispatched for real: a stop of a scenario no runner took completes to inactive."""
    scenario = make_scenario(owner=user, name="cam")

    with django_capture_on_commit_callbacks(execute=True):
        resp = command(api, scenario.pk, {"status": "init_shutdown"})
    assert resp.status_code == 202

    shown = api.get(scenario_url(scenario.pk)).json()
    assert shown["status"] == "inactive"
    assert shown["stop_reason"] == "requested"

    with django_capture_on_commit_callbacks(execute=True):
        resp = command(api, scenario.pk, {"status": "init_startup"})
    assert resp.status_code == 202
    assert resp.json()["status"] == "init_startup"
    assert queued("runner") == 1
    scenario.refresh_from_db()
    assert scenario.status == Status.IN_STARTUP_PROCESSING
    assert scenario.epoch == 2


@pytest.mark.parametrize(
    "body",
    [
        {"status": "active"},
        {"status": "inactive"},
        {"status": "in_startup_processing"},
        {"status": "INIT_SHUTDOWN"},
        {"status": "init_shutdown "},
        {"status": ""},
        {"status": None},
        {"status": 5},
        {"status": ["init_shutdown"]},
        {},
        {"state": "init_shutdown"},
    ],
)
def test_a_bad_status_value_is_400(api: APIClient, user: User, body: dict[str, Any]) -> None:
    scenario = make_scenario(owner=user, name="cam")
    before = rows()

    resp = command(api, scenario.pk, body)

    assert resp.status_code == 400, resp.content
    assert "status" in resp.json()
    scenario.refresh_from_db()
    assert scenario.status == Status.INIT_STARTUP
    assert rows() == before


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ("init_shutdown", "application/json"),
        ('"init_shutdown"', "application/json"),
        ('["init_shutdown"]', "application/json"),
        ("status=init_shutdown", "application/x-www-form-urlencoded"),
    ],
)
def test_a_command_body_that_is_not_a_json_object_is_400(
    api: APIClient, user: User, data: str, content_type: str
) -> None:
    scenario = make_scenario(owner=user, name="cam")
    before = rows()

    resp = api.post(scenario_url(scenario.pk), data=data, content_type=content_type)

    assert resp.status_code == 400, resp.content
    assert isinstance(resp.json(), dict)
    scenario.refresh_from_db()
    assert scenario.status == Status.INIT_STARTUP
    assert rows() == before


# --- GET /prediction/<id>/ ------------------------------------------------------------------

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def prediction_rows(scenario: Scenario, frames: list[int]) -> list[Prediction]:
    return [
        Prediction(
            scenario=scenario,
            frame_index=f,
            epoch=1,
            pts=f / 25,
            captured_at=T0 + timedelta(seconds=f / 25),
            width=1280,
            height=720,
            inference_ms=40.0 + f % 7,
            boxes=[
                {
                    "label": "person",
                    "class_id": 0,
                    "confidence": 0.91,
                    "x1": 10.5,
                    "y1": 20.0,
                    "x2": 110.0,
                    "y2": 300.0 + f,
                }
            ]
            if f % 3 == 0
            else [],
        )
        for f in frames
    ]


@pytest.fixture
def frames(user: User) -> tuple[Scenario, list[int]]:
    """A scenario with 250 predictions at gappy frame indexes, inserted out of order; a second
    scenario of the same owner holds overlapping frames that must never show up."""
    scenario = make_scenario(owner=user, name="cam", status=Status.ACTIVE)
    rng = random.Random(7)
    indexes = sorted(rng.sample(range(2000), 250))
    if 0 not in indexes:
        indexes = [0, *indexes[1:]]
    shuffled = indexes[:]
    rng.shuffle(shuffled)
    Prediction.objects.bulk_create(prediction_rows(scenario, shuffled))
    noise = make_scenario(owner=user, name="cam", status=Status.ACTIVE)
    Prediction.objects.bulk_create(prediction_rows(noise, list(range(0, 2000, 3))))
    return scenario, indexes


def page(api: APIClient, url: str) -> dict[str, Any]:
    resp = api.get(url)
    assert resp.status_code == 200, (url, resp.content)
    body = resp.json()
    assert set(body) >= PAGE_FIELDS, body
    return cast("dict[str, Any]", body)


def frame_indexes(body: dict[str, Any]) -> list[int]:
    return [r["frame_index"] for r in body["results"]]


def follow(api: APIClient, url: str, *, max_pages: int = 1000) -> list[list[int]]:
    """Frame indexes of every page, following ``next`` until it is null."""
    pages: list[list[int]] = []
    next_url: str | None = url
    while next_url is not None:
        assert len(pages) < max_pages, "next never becomes null"
        body = page(api, next_url)
        pages.append(frame_indexes(body))
        next_url = body["next"]
    return pages


def test_prediction_page_shape(api: APIClient, frames: tuple[Scenario, list[int]]) -> None:
    scenario, _ = frames

    body = page(api, prediction_url(scenario.pk))

    assert body["scenario_id"] == str(scenario.pk)
    assert body["status"] == "active"
    assert isinstance(body["results"], list)
    first = body["results"][0]
    assert set(first) >= RESULT_FIELDS, first
    assert first["frame_index"] == 0
    assert first["pts"] == 0.0
    assert parse_time(first["captured_at"]) == T0
    assert first["width"] == 1280
    assert first["height"] == 720
    assert first["inference_ms"] == 40.0
    assert first["boxes"] == [
        {
            "label": "person",
            "class_id": 0,
            "confidence": 0.91,
            "x1": 10.5,
            "y1": 20.0,
            "x2": 110.0,
            "y2": 300.0,
        }
    ]
    for result in body["results"]:
        assert set(result) >= RESULT_FIELDS
        f = result["frame_index"]
        assert isinstance(f, int)
        assert result["pts"] == pytest.approx(f / 25)
        assert parse_time(result["captured_at"]) == T0 + timedelta(seconds=f / 25)
        assert isinstance(result["inference_ms"], int | float)
        assert isinstance(result["boxes"], list)
        for box in result["boxes"]:
            assert set(box) >= BOX_FIELDS


def test_predictions_default_to_the_first_100_in_frame_order(
    api: APIClient, frames: tuple[Scenario, list[int]]
) -> None:
    scenario, indexes = frames

    body = page(api, prediction_url(scenario.pk))

    assert frame_indexes(body) == indexes[:100]
    assert body["next"] is not None
    parts = urlsplit(body["next"])
    assert parts.scheme in ("http", "https") and parts.netloc, body["next"]
    assert parts.path == prediction_url(scenario.pk)
    assert parse_qs(parts.query)["after"] == [str(indexes[99])]


@pytest.mark.parametrize("limit", [None, 1, 7, 50, 100, 249, 250, 251, 1000])
def test_following_next_sees_every_frame_once(
    api: APIClient, frames: tuple[Scenario, list[int]], limit: int | None
) -> None:
    scenario, indexes = frames
    url = prediction_url(scenario.pk) if limit is None else prediction_url(scenario.pk, limit=limit)

    pages = follow(api, url)

    seen = [f for p in pages for f in p]
    assert seen == indexes  # every row exactly once, in frame order across pages
    size = limit or 100
    assert all(len(p) == size for p in pages[:-1])
    assert len(pages[-1]) <= size
    # At most one trailing empty page when the total is a multiple of the page size.
    assert len(pages) in (-(-len(indexes) // size), len(indexes) // size + 1)


def test_after_is_a_cursor(api: APIClient, frames: tuple[Scenario, list[int]]) -> None:
    scenario, indexes = frames

    body = page(api, prediction_url(scenario.pk, after=indexes[9]))
    assert frame_indexes(body) == indexes[10:110]

    body = page(api, prediction_url(scenario.pk, after=0))
    assert frame_indexes(body) == indexes[1:101]

    body = page(api, prediction_url(scenario.pk, after=-1))
    assert frame_indexes(body) == indexes[:100]

    gap = next(f for f in range(indexes[-1]) if f not in indexes)
    later = [f for f in indexes if f > gap]
    body = page(api, prediction_url(scenario.pk, after=gap))
    assert frame_indexes(body) == later[:100]

    body = page(api, prediction_url(scenario.pk, after=indexes[-2], limit=5))
    assert frame_indexes(body) == [indexes[-1]]
    assert body["next"] is None

    for after in (indexes[-1], indexes[-1] + 1000):
        body = page(api, prediction_url(scenario.pk, after=after))
        assert body["results"] == []
        assert body["next"] is None


def test_after_and_limit_together(api: APIClient, frames: tuple[Scenario, list[int]]) -> None:
    scenario, indexes = frames

    body = page(api, prediction_url(scenario.pk, after=indexes[20], limit=3))

    assert frame_indexes(body) == indexes[21:24]
    assert parse_qs(urlsplit(body["next"]).query)["after"] == [str(indexes[23])]
    assert frame_indexes(page(api, body["next"])) == indexes[24:27]


def test_limit_is_at_most_1000(api: APIClient, user: User) -> None:
    scenario = make_scenario(owner=user, name="cam", status=Status.ACTIVE)
    Prediction.objects.bulk_create(prediction_rows(scenario, list(range(1200))))

    body = page(api, prediction_url(scenario.pk, limit=1000))
    assert frame_indexes(body) == list(range(1000))
    rest = follow(api, body["next"])
    assert [f for p in rest for f in p] == list(range(1000, 1200))

    # Beyond the schema's maximum: refused, not quietly capped.
    for limit in (1001, 5000):
        resp = api.get(prediction_url(scenario.pk, limit=limit))
        assert resp.status_code == 400, resp.content
        assert set(resp.json()) == {"limit"}


def test_a_scenario_without_predictions_has_an_empty_page(api: APIClient, user: User) -> None:
    scenario = make_scenario(owner=user, name="cam")

    body = page(api, prediction_url(scenario.pk))

    assert body["scenario_id"] == str(scenario.pk)
    assert body["status"] == "init_startup"
    assert body["next"] is None
    assert body["results"] == []


def test_a_huge_after_is_an_empty_page_not_an_error(
    api: APIClient, frames: tuple[Scenario, list[int]]
) -> None:
    scenario, _ = frames

    for after in (2**63 - 1, 2**63, 10**20):
        resp = api.get(prediction_url(scenario.pk, after=after))
        assert resp.status_code == 200, (after, resp.content)
        assert resp.json()["results"] == []
        assert resp.json()["next"] is None


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("after", "abc"),
        ("after", "-5"),
        ("after", "1.5"),
        ("after", "1e3"),
        ("limit", "abc"),
        ("limit", "0"),
        ("limit", "-5"),
        ("limit", "2.5"),
        ("limit", "1001"),
    ],
)
def test_a_bad_after_or_limit_is_400(
    api: APIClient, frames: tuple[Scenario, list[int]], param: str, value: str
) -> None:
    scenario, _ = frames

    resp = api.get(prediction_url(scenario.pk, **{param: value}))

    assert resp.status_code == 400, resp.content
    assert param in resp.json()


@pytest.mark.parametrize(
    ("source", "status"),
    [
        ("s3://misis-test/clips/a.mp4", 201),
        ("s3://misis-test/deep/key with space.mp4", 201),
        ("s3://other-bucket/a.mp4", 400),  # only the buckets in MISIS_S3_BUCKETS
        ("s3://misis-test/", 400),
        ("s3://bad bucket/a.mp4", 400),
    ],
)
def test_s3_sources_when_object_storage_is_configured(
    api: APIClient, s3_settings: Any, source: str, status: int
) -> None:
    resp = create(api, {"source": source})
    assert resp.status_code == status, resp.content
    if status == 400:
        assert set(resp.json()) == {"source"} and not Scenario.objects.exists()
