"""The live preview: the newest frame as a JPEG and the page that shows it (real Redis)."""

from __future__ import annotations

import json
import re
import time
from typing import cast

import cv2
import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core import signing
from django.test import Client
from pytest_django import Settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from misis.redis_client import get_redis
from scenarios import preview
from scenarios.models import Scenario
from scenarios.preview_links import preview_link_sign, preview_url
from tests.factories import make_scenario
from tests.helpers import token_key

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
def scenario(user: User) -> Scenario:
    return make_scenario(owner=user)


def token_of(user: User) -> str:
    return token_key(Token.objects.get_or_create(user=user)[0])


def sig_of(scenario: Scenario) -> str:
    return preview_link_sign(scenario=scenario)


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
    assert decoded is not None
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
    bad_header = APIClient(HTTP_AUTHORIZATION="Token nope")
    assert bad_header.get(f"/scenario/{scenario.pk}/frame.jpg").status_code == 401


def test_a_token_in_the_query_string_authenticates_nothing(
    user: User, staff_user: User, scenario: Scenario
) -> None:
    """A full API token in a URL lands in access logs and browser history: no longer taken."""
    store_frame(scenario, jpeg())
    for who in (user, staff_user):
        key = token_of(who)
        for path in ("frame.jpg", "view/", "view/state/", ""):
            resp = APIClient().get(f"/scenario/{scenario.pk}/{path}?token={key}")
            assert resp.status_code == 401, (path, resp.content)
        assert APIClient().get(f"/prediction/{scenario.pk}/?token={key}").status_code == 401


def test_frame_with_a_preview_link(user: User, other_user: User, scenario: Scenario) -> None:
    store_frame(scenario, data := jpeg())
    resp = APIClient().get(f"/scenario/{scenario.pk}/frame.jpg?sig={sig_of(scenario)}")
    assert resp.status_code == 200
    assert resp.content == data
    # A link of the other user's own scenario does not open this one.
    theirs = make_scenario(owner=other_user)
    other = APIClient().get(f"/scenario/{scenario.pk}/frame.jpg?sig={sig_of(theirs)}")
    assert other.status_code == 404


def test_frame_with_a_session(user: User, scenario: Scenario) -> None:
    store_frame(scenario, data := jpeg())
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    resp = browser.get(f"/scenario/{scenario.pk}/frame.jpg")
    assert resp.status_code == 200
    assert resp.content == data


def test_staff_see_frames_of_others(staff_api: APIClient, scenario: Scenario) -> None:
    store_frame(scenario, data := jpeg())
    resp = staff_api.get(f"/scenario/{scenario.pk}/frame.jpg")
    assert resp.status_code == 200
    assert resp.content == data


def test_a_preview_link_is_only_for_the_preview(user: User, scenario: Scenario) -> None:
    sig = sig_of(scenario)
    for url in (f"/scenario/{scenario.pk}/", f"/prediction/{scenario.pk}/", "/metrics"):
        assert APIClient().get(f"{url}?sig={sig}").status_code == 401, url
    command = APIClient().post(
        f"/scenario/{scenario.pk}/?sig={sig}", {"status": "init_shutdown"}, format="json"
    )
    assert command.status_code == 401
    scenario.refresh_from_db()
    assert scenario.status == "init_startup"


# --- preview links -------------------------------------------------------------------------------


def test_the_api_gives_the_owner_a_working_preview_link(api: APIClient, scenario: Scenario) -> None:
    store_frame(scenario, data := jpeg())
    link = api.get(f"/scenario/{scenario.pk}/").json()["preview_url"]
    assert link.startswith(f"/scenario/{scenario.pk}/view/?sig=")
    assert token_of(scenario.owner) not in link
    page = APIClient().get(link)
    assert page.status_code == 200
    config = page_config(page.content.decode())
    sig = config["sig"]
    assert isinstance(sig, str) and sig in link
    frame = APIClient().get(f"{config['frame_url']}?sig={sig}")
    assert (frame.status_code, frame.content) == (200, data)
    state = APIClient().get(f"{config['state_url']}?sig={sig}")
    assert state.status_code == 200
    assert state.json()["id"] == str(scenario.pk)
    # The state answer carries no fresh link: a link cannot renew itself past its expiry.
    assert "preview_url" not in state.json()
    assert "token" not in config


def test_a_link_for_another_scenario_of_the_same_owner_is_404(
    user: User, scenario: Scenario
) -> None:
    store_frame(scenario, jpeg())
    second = make_scenario(owner=user)
    sig = sig_of(second)
    for path in ("frame.jpg", "view/", "view/state/"):
        resp = APIClient().get(f"/scenario/{scenario.pk}/{path}?sig={sig}")
        assert resp.status_code == 404, path
        assert resp.json() == {"detail": "no such scenario"}
    assert APIClient().get(f"/scenario/{second.pk}/view/?sig={sig}").status_code == 200


def test_an_expired_link_is_403(
    scenario: Scenario, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_frame(scenario, jpeg())
    settings.MISIS_PREVIEW_LINK_TTL = 600
    real = time.time
    monkeypatch.setattr("django.core.signing.time.time", lambda: real() - 601)
    sig = sig_of(scenario)
    monkeypatch.setattr("django.core.signing.time.time", real)
    for path in ("frame.jpg", "view/", "view/state/"):
        resp = APIClient().get(f"/scenario/{scenario.pk}/{path}?sig={sig}")
        assert resp.status_code == 403, (path, resp.content)
        assert resp["Content-Type"] == "application/json"
        assert "expired" in resp.json()["detail"]
    # Within the TTL, the same kind of link works.
    monkeypatch.setattr("django.core.signing.time.time", lambda: real() - 590)
    fresh = sig_of(scenario)
    monkeypatch.setattr("django.core.signing.time.time", real)
    assert APIClient().get(f"/scenario/{scenario.pk}/frame.jpg?sig={fresh}").status_code == 200


def test_the_default_link_lifetime_is_an_hour(settings: Settings) -> None:
    assert settings.MISIS_PREVIEW_LINK_TTL == 3600


def test_a_tampered_or_forged_link_is_403(user: User, scenario: Scenario) -> None:
    store_frame(scenario, jpeg())
    sig = sig_of(scenario)
    value, stamp, mac = sig.rsplit(":", 2)
    staff = get_user_model().objects.create_user(username="root", is_staff=True)
    forged = [
        f"{value}:{stamp}:{mac[:-2]}{'AA' if mac[-2:] != 'AA' else 'BB'}",  # another MAC
        f"{scenario.pk}.{staff.pk}:{stamp}:{mac}",  # another user, the old MAC
        f"{value}:{stamp}",  # no MAC at all
        # Signed by the project's key for another purpose (another salt): not a preview link.
        signing.TimestampSigner().sign(f"{scenario.pk}.{scenario.owner_id}"),
        signing.TimestampSigner(salt="misis.other").sign(f"{scenario.pk}.{scenario.owner_id}"),
        "",
        "garbage",
    ]
    for bad in forged:
        resp = APIClient().get(f"/scenario/{scenario.pk}/frame.jpg", {"sig": bad})
        if bad == "":
            assert resp.status_code == 401  # no link at all: not authenticated
            continue
        assert resp.status_code == 403, (bad, resp.content)
        assert "not valid" in resp.json()["detail"]


def test_a_link_of_a_deactivated_owner_or_a_given_away_scenario_is_refused(
    user: User, other_user: User, scenario: Scenario
) -> None:
    store_frame(scenario, jpeg())
    sig = sig_of(scenario)
    Scenario.objects.filter(pk=scenario.pk).update(owner=other_user)
    assert APIClient().get(f"/scenario/{scenario.pk}/frame.jpg?sig={sig}").status_code == 404
    Scenario.objects.filter(pk=scenario.pk).update(owner=user)
    assert APIClient().get(f"/scenario/{scenario.pk}/frame.jpg?sig={sig}").status_code == 200
    get_user_model().objects.filter(pk=scenario.owner_id).update(is_active=False)
    assert APIClient().get(f"/scenario/{scenario.pk}/frame.jpg?sig={sig}").status_code == 403


def test_preview_url_is_a_path_with_the_signature(scenario: Scenario) -> None:
    url = preview_url(scenario=scenario)
    assert url.startswith(f"/scenario/{scenario.pk}/view/?sig=")


# --- the page ----------------------------------------------------------------------------------


def page_config(html: str) -> dict[str, object]:
    found = re.search(
        r'<script id="preview-config" type="application/json">(.*?)</script>', html, re.S
    )
    assert found, "no preview-config in the page"
    return cast("dict[str, object]", json.loads(found.group(1)))


def test_page_with_a_preview_link(user: User, scenario: Scenario) -> None:
    sig = sig_of(scenario)
    resp = APIClient().get(f"/scenario/{scenario.pk}/view/?sig={sig}")
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
    assert config["sig"] == sig
    assert config["frame_url"] == f"/scenario/{scenario.pk}/frame.jpg"
    assert config["state_url"] == f"/scenario/{scenario.pk}/view/state/"


def test_page_with_a_session_polls_the_session_state(user: User, scenario: Scenario) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    resp = browser.get(f"/scenario/{scenario.pk}/view/")
    assert resp.status_code == 200
    config = page_config(resp.content.decode())
    assert config["sig"] is None
    assert config["state_url"] == f"/scenario/{scenario.pk}/view/state/"
    state = browser.get(str(config["state_url"]))
    assert state.status_code == 200
    assert state.json()["id"] == str(scenario.pk)
    assert state.json()["status"] == scenario.status


def test_page_with_header_token(api: APIClient, scenario: Scenario) -> None:
    resp = api.get(f"/scenario/{scenario.pk}/view/")
    assert resp.status_code == 200
    assert str(scenario.pk) in resp.content.decode()


def test_page_escapes_what_the_user_wrote(user: User) -> None:
    scenario = make_scenario(owner=user)
    Scenario.objects.filter(pk=scenario.pk).update(name="<script>alert(1)</script>")
    resp = APIClient().get(f"/scenario/{scenario.pk}/view/?sig={sig_of(scenario)}")
    assert resp.status_code == 200
    assert "<script>alert(1)</script>" not in resp.content.decode()


def test_page_needs_authentication(scenario: Scenario) -> None:
    resp = APIClient().get(f"/scenario/{scenario.pk}/view/", HTTP_ACCEPT="text/html")
    assert resp.status_code == 401
    assert resp["Content-Type"] == "application/json"
    assert APIClient().get(f"/scenario/{scenario.pk}/view/state/").status_code == 401
    assert APIClient().get(f"/scenario/{scenario.pk}/view/?sig=").status_code == 401


def test_page_of_another_users_scenario_is_404(other_api: APIClient, scenario: Scenario) -> None:
    resp = other_api.get(f"/scenario/{scenario.pk}/view/", HTTP_ACCEPT="text/html")
    assert resp.status_code == 404
    assert resp["Content-Type"] == "application/json"
    assert other_api.get(f"/scenario/{scenario.pk}/view/state/").status_code == 404


def test_staff_see_pages_of_others(staff_api: APIClient, scenario: Scenario) -> None:
    resp = staff_api.get(f"/scenario/{scenario.pk}/view/")
    assert resp.status_code == 200
    assert str(scenario.pk) in resp.content.decode()
    # The link staff get from the API opens the page too (as the owner, for that scenario only).
    link = staff_api.get(f"/scenario/{scenario.pk}/").json()["preview_url"]
    assert APIClient().get(link).status_code == 200
