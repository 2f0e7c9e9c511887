"""The live preview: the newest frame as a JPEG and the page that shows it (real Redis)."""

from __future__ import annotations

import json
import re

import cv2
import numpy as np
import pytest
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from misis.redis_client import get_redis
from runner import preview
from scenarios.models import Scenario
from tests.factories import make_scenario

pytestmark = pytest.mark.django_db


def jpeg(width: int = 64, height: int = 48, value: int = 90) -> bytes:
    image = np.full((height, width, 3), value, dtype=np.uint8)
    cv2.rectangle(image, (8, 8), (40, 30), (0, 200, 0), 2)
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return data.tobytes()


def store_frame(scenario: Scenario, data: bytes) -> None:
    get_redis().set(preview.frame_key(scenario.pk), data)


@pytest.fixture
def scenario(user: object) -> Scenario:
    return make_scenario(owner=user)


def token_of(user: object) -> str:
    return Token.objects.get_or_create(user=user)[0].key


# --- frame.jpg ---------------------------------------------------------------------------------


def test_frame_returns_the_stored_jpeg(api: APIClient, scenario: Scenario) -> None:
    data = jpeg()
    store_frame(scenario, data)
    resp = api.get(f"/scenario/{scenario.pk}/frame.jpg")
    assert resp.status_code == 200
    assert resp["Content-Type"] == "image/jpeg"
    assert resp["Cache-Control"] == "no-store"
    assert resp.content == data
    decoded = cv2.imdecode(np.frombuffer(resp.content, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (48, 64, 3)


def test_frame_follows_the_newest_one(api: APIClient, scenario: Scenario) -> None:
    store_frame(scenario, jpeg(value=10))
    store_frame(scenario, newest := jpeg(value=200))
    assert api.get(f"/scenario/{scenario.pk}/frame.jpg").content == newest


def test_frame_is_404_json_before_the_first_frame(api: APIClient, scenario: Scenario) -> None:
    resp = api.get(f"/scenario/{scenario.pk}/frame.jpg", HTTP_ACCEPT="image/*")
    assert resp.status_code == 404
    assert resp["Content-Type"] == "application/json"
    assert resp.json() == {"detail": "no frame yet"}


def test_frame_of_another_users_scenario_is_404(other_api: APIClient, scenario: Scenario) -> None:
    store_frame(scenario, jpeg())
    resp = other_api.get(f"/scenario/{scenario.pk}/frame.jpg")
    assert resp.status_code == 404
    assert resp["Content-Type"] == "application/json"
    assert "detail" in resp.json()


def test_frame_of_unknown_or_malformed_id_is_404(api: APIClient) -> None:
    assert api.get("/scenario/00000000-0000-0000-0000-000000000000/frame.jpg").status_code == 404
    assert api.get("/scenario/not-a-uuid/frame.jpg").status_code == 404


def test_frame_needs_authentication(scenario: Scenario) -> None:
    store_frame(scenario, jpeg())
    resp = APIClient().get(f"/scenario/{scenario.pk}/frame.jpg", HTTP_ACCEPT="image/jpeg")
    assert resp.status_code == 401
    assert resp["Content-Type"] == "application/json"
    assert resp["WWW-Authenticate"] == "Token"


def test_frame_with_a_wrong_token_is_401(scenario: Scenario) -> None:
    store_frame(scenario, jpeg())
    assert APIClient().get(f"/scenario/{scenario.pk}/frame.jpg?token=nope").status_code == 401
    bad_header = APIClient(HTTP_AUTHORIZATION="Token nope")
    assert bad_header.get(f"/scenario/{scenario.pk}/frame.jpg").status_code == 401


def test_frame_with_token_in_query(user: object, other_user: object, scenario: Scenario) -> None:
    store_frame(scenario, data := jpeg())
    resp = APIClient().get(f"/scenario/{scenario.pk}/frame.jpg?token={token_of(user)}")
    assert resp.status_code == 200
    assert resp.content == data
    other = APIClient().get(f"/scenario/{scenario.pk}/frame.jpg?token={token_of(other_user)}")
    assert other.status_code == 404


def test_frame_with_a_session(user: object, scenario: Scenario) -> None:
    store_frame(scenario, data := jpeg())
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)  # type: ignore[arg-type]
    resp = browser.get(f"/scenario/{scenario.pk}/frame.jpg")
    assert resp.status_code == 200
    assert resp.content == data


def test_staff_see_frames_of_others(staff_api: APIClient, scenario: Scenario) -> None:
    store_frame(scenario, data := jpeg())
    resp = staff_api.get(f"/scenario/{scenario.pk}/frame.jpg")
    assert resp.status_code == 200
    assert resp.content == data


def test_query_token_is_only_for_the_preview(user: object, scenario: Scenario) -> None:
    resp = APIClient().get(f"/scenario/{scenario.pk}/?token={token_of(user)}")
    assert resp.status_code == 401


# --- the page ----------------------------------------------------------------------------------


def page_config(html: str) -> dict[str, object]:
    found = re.search(
        r'<script id="preview-config" type="application/json">(.*?)</script>', html, re.S
    )
    assert found, "no preview-config in the page"
    return json.loads(found.group(1))


def test_page_with_token_in_query(user: object, scenario: Scenario) -> None:
    key = token_of(user)
    resp = APIClient().get(f"/scenario/{scenario.pk}/view/?token={key}")
    assert resp.status_code == 200
    assert resp["Content-Type"].startswith("text/html")
    assert resp["Cache-Control"] == "no-store"
    html = resp.content.decode()
    assert str(scenario.pk) in html
    for element in (
        'id="frame"',
        'id="status"',
        'id="fps"',
        'id="frames-processed"',
        'id="frames-dropped"',
        'id="restarts"',
        'id="progress"',
        'id="error"',
        'data-updated="0"',
    ):
        assert element in html, element
    # The status shown before the script has run is a placeholder, not the real status.
    assert re.search(r'<span id="status"[^>]*>&hellip;</span>', html)
    assert "http://" not in html and "https://" not in html  # no external assets
    config = page_config(html)
    assert config["id"] == str(scenario.pk)
    assert config["token"] == key
    assert config["frame_url"] == f"/scenario/{scenario.pk}/frame.jpg"
    assert config["state_url"] == f"/scenario/{scenario.pk}/"


def test_page_with_a_session_polls_the_session_state(user: object, scenario: Scenario) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)  # type: ignore[arg-type]
    resp = browser.get(f"/scenario/{scenario.pk}/view/")
    assert resp.status_code == 200
    config = page_config(resp.content.decode())
    assert config["token"] is None
    assert config["state_url"] == f"/scenario/{scenario.pk}/view/state/"
    state = browser.get(str(config["state_url"]))
    assert state.status_code == 200
    assert state.json()["id"] == str(scenario.pk)
    assert state.json()["status"] == scenario.status


def test_page_with_header_token(api: APIClient, scenario: Scenario) -> None:
    resp = api.get(f"/scenario/{scenario.pk}/view/")
    assert resp.status_code == 200
    assert str(scenario.pk) in resp.content.decode()


def test_page_escapes_what_the_user_wrote(user: object) -> None:
    scenario = make_scenario(owner=user)
    Scenario.objects.filter(pk=scenario.pk).update(name="<script>alert(1)</script>")
    resp = APIClient().get(f"/scenario/{scenario.pk}/view/?token={token_of(user)}")
    assert "<script>alert(1)</script>" not in resp.content.decode()


def test_page_needs_authentication(scenario: Scenario) -> None:
    resp = APIClient().get(f"/scenario/{scenario.pk}/view/", HTTP_ACCEPT="text/html")
    assert resp.status_code == 401
    assert resp["Content-Type"] == "application/json"
    assert APIClient().get(f"/scenario/{scenario.pk}/view/state/").status_code == 401
    assert APIClient().get(f"/scenario/{scenario.pk}/view/?token=nope").status_code == 401


def test_page_of_another_users_scenario_is_404(other_user: object, scenario: Scenario) -> None:
    key = token_of(other_user)
    resp = APIClient().get(f"/scenario/{scenario.pk}/view/?token={key}", HTTP_ACCEPT="text/html")
    assert resp.status_code == 404
    assert resp["Content-Type"] == "application/json"
    assert APIClient().get(f"/scenario/{scenario.pk}/view/state/?token={key}").status_code == 404


def test_staff_see_pages_of_others(staff_user: object, scenario: Scenario) -> None:
    resp = APIClient().get(f"/scenario/{scenario.pk}/view/?token={token_of(staff_user)}")
    assert resp.status_code == 200
    assert str(scenario.pk) in resp.content.decode()
