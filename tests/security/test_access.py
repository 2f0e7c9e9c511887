"""Who reaches which URL: every URL pattern of the project, walked from Django's resolver.

Each pattern is classified below (``CLASSIFIED``), or lives inside the admin site. A pattern that
is neither makes ``test_every_url_is_classified`` fail: a new endpoint has to be added here, on
purpose, with the access rule it follows, and then every rule is checked against every pattern:

* without credentials: 401, but ``/health/``, ``/api/schema/`` and ``/api/docs/`` (200); admin
  pages send to the admin login;
* a non-staff user: 403 on ``/metrics``; admin pages send to the login;
* another user's scenario does not exist (404): its detail, commands, predictions, frame.jpg,
  preview page and state, through the ``Authorization`` header, a signed preview link
  (``?sig=``, preview pages only) and a session; an API token in the query string
  (``?token=``) opens nothing;
* staff reach everything.

Also: secrets come from the environment only (``misis/settings``).
"""

from __future__ import annotations

import ast
import logging
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, User
from django.contrib.contenttypes.models import ContentType
from django.core.files.base import ContentFile
from django.http import HttpResponseBase
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.utils.regex_helper import normalize
from pytest_django import Settings
from rest_framework.authtoken.models import Token

from misis.redis_client import get_redis
from scenarios import preview
from scenarios.models import Scenario, Status
from scenarios.preview_links import preview_link_sign
from sources.models import Upload
from sources.storage import video_storage
from tests.factories import make_event, make_prediction, make_scenario

if TYPE_CHECKING:
    # What the test client returns: a response with .json(), .client and the request.
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

ROOT = Path(__file__).resolve().parents[2]

# --- the classification ----------------------------------------------------------------------

PUBLIC = "public"  # 200 without a token
AUTHENTICATED = "authenticated"  # any valid token (Authorization header)
STAFF = "staff"  # a staff token (Authorization header)
OWNED_API = "owned-api"  # one scenario, its owner or staff; Authorization header only
OWNED_PREVIEW = "owned-preview"  # one scenario, its owner or staff; header, ?sig= or session
DASHBOARD = "dashboard"  # session pages (dashboard/): logged out, sent to /login/

# Every URL pattern outside the admin site, by its route (as in ``ResolverMatch.route``).
CLASSIFIED: dict[str, str] = {
    "health/": PUBLIC,
    "api/schema/": PUBLIC,
    "api/docs/": PUBLIC,
    "metrics": STAFF,
    "scenario/": AUTHENTICATED,
    "video/": AUTHENTICATED,
    "scenario/<str:scenario_id>/": OWNED_API,
    "prediction/<str:scenario_id>/": OWNED_API,
    "event/<str:scenario_id>/": OWNED_API,
    "event/<str:scenario_id>/<str:seq>/snapshot.jpg": OWNED_API,
    "scenario/<str:scenario_id>/frame.jpg": OWNED_PREVIEW,
    "scenario/<str:scenario_id>/view/": OWNED_PREVIEW,
    "scenario/<str:scenario_id>/view/state/": OWNED_PREVIEW,
    "": DASHBOARD,
    "login/": DASHBOARD,
    "logout/": DASHBOARD,
    "dashboard/state/": DASHBOARD,
    "dashboard/<uuid:scenario_id>/stop/": DASHBOARD,
    "dashboard/<uuid:scenario_id>/start/": DASHBOARD,
    "dashboard/<uuid:scenario_id>/delete/": DASHBOARD,
}
# The dashboard's own login and logout: open to the logged out.
DASHBOARD_OPEN = {"login/", "logout/"}

# Every admin route sends whoever is not staff to the admin login, but these two: the login form
# itself, and logout (which sends non-staff to the admin index, and from there to the login).
ADMIN_LOGIN = "admin/login/"
ADMIN_LOGOUT = "admin/logout/"
ADMIN_OPEN = {ADMIN_LOGIN, ADMIN_LOGOUT}
# "View on site" (contenttypes' shortcut, behind the staff check too): 404 for staff, since no
# model has get_absolute_url.
ADMIN_VIEW_ON_SITE = "admin/r/<path:content_type_id>/<path:object_id>/"
ADMIN_CATCH_ALL = "admin/(?P<url>.*)$"
ADMIN_NAMESPACE = "admin"


@dataclass(frozen=True)
class Route:
    route: str
    chain: tuple[Any, ...]  # the URLResolvers walked, then the URLPattern

    @property
    def pattern(self) -> URLPattern:
        return cast(URLPattern, self.chain[-1])

    @property
    def is_admin(self) -> bool:
        return any(
            isinstance(p, URLResolver) and p.namespace == ADMIN_NAMESPACE for p in self.chain
        )

    @property
    def kind(self) -> str | None:
        if self.is_admin:
            return "admin-open" if self.route in ADMIN_OPEN else "admin"
        return CLASSIFIED.get(self.route)

    @property
    def methods(self) -> tuple[str, ...]:
        """The HTTP methods the view implements (admin views: GET and POST)."""
        view_class = getattr(self.pattern.callback, "view_class", None)
        if view_class is None:
            return ("get", "post")
        return tuple(m for m in ("get", "post", "put", "patch", "delete") if hasattr(view_class, m))

    def params(self) -> list[str]:
        return [name for p in self.chain for name in normalize(p.pattern.regex.pattern)[0][1]]

    def url(self, values: dict[str, str]) -> str:
        """A concrete URL for this pattern, each path parameter taken from ``values``."""
        parts = []
        for p in self.chain:
            template, names = normalize(p.pattern.regex.pattern)[0]
            parts.append(template % {name: values[name] for name in names})
        return "/" + "".join(parts)

    def __str__(self) -> str:
        return self.route


def _join(route: str, part: str) -> str:
    # As django.urls.resolvers.URLResolver._join_route.
    return part if not route else route + part.removeprefix("^")


def _walk(resolver: URLResolver, chain: tuple[Any, ...] = (), route: str = "") -> Iterator[Route]:
    for p in resolver.url_patterns:
        if isinstance(p, URLResolver):
            yield from _walk(p, (*chain, p), _join(route, str(p.pattern)))
        else:
            yield Route(_join(route, str(p.pattern)), (*chain, p))


ROUTES = list(_walk(get_resolver()))
API_ROUTES = [
    r for r in ROUTES if not r.is_admin and CLASSIFIED.get(r.route, DASHBOARD) != DASHBOARD
]
DASHBOARD_ROUTES = [r for r in ROUTES if not r.is_admin and CLASSIFIED.get(r.route) == DASHBOARD]
ADMIN_ROUTES = [r for r in ROUTES if r.is_admin]
OWNED_ROUTES = [r for r in API_ROUTES if r.kind in (OWNED_API, OWNED_PREVIEW)]


def by_kind(*kinds: str) -> list[Route]:
    return [r for r in API_ROUTES if r.kind in kinds]


def ids(routes: list[Route]) -> list[str]:
    return [r.route for r in routes]


# --- the world the requests meet -------------------------------------------------------------

UserModel = get_user_model()


@dataclass
class World:
    owner: Any
    other: Any
    staff: Any
    scenario: Scenario  # the owner's
    tokens: dict[str, str]  # username -> key

    def values(self, route: Route, scenario_id: str | None = None) -> dict[str, str]:
        """A value for each path parameter of ``route``: real rows wherever one fits."""
        model_admin = getattr(route.pattern.callback, "model_admin", None)
        object_id = str(self.scenario.pk)
        if model_admin is not None:
            obj = model_admin.model._default_manager.order_by("pk").first()
            assert obj is not None, f"no {model_admin.model.__name__} row for {route}"
            object_id = str(obj.pk)
        known = {
            "scenario_id": scenario_id or str(self.scenario.pk),
            "object_id": object_id,
            "content_type_id": str(ContentType.objects.get_for_model(Scenario).pk),
            "id": str(self.owner.pk),  # admin/auth/user/<id>/password/
            "app_label": "scenarios",
            "url": "no-such-page/",  # the admin's catch-all
            "seq": "1",  # the world's event
        }
        missing = set(route.params()) - set(known)
        assert not missing, f"{route}: teach test_access.py a value for {sorted(missing)}"
        return {name: known[name] for name in route.params()}

    def url(self, route: Route, scenario_id: str | None = None) -> str:
        return route.url(self.values(route, scenario_id))

    def header(self, user: User) -> Client:
        return Client(HTTP_AUTHORIZATION=f"Token {self.tokens[user.username]}")

    def session(self, user: User) -> Client:
        client = Client()
        client.force_login(user)
        return client

    def query(self, user: User, url: str) -> str:
        return f"{url}{'&' if '?' in url else '?'}token={self.tokens[user.username]}"

    def link(self, user: User, url: str) -> str:
        """``url`` with the preview link ``user`` gets from the API: of the world's scenario for
        its owner and staff, of a scenario of their own for anyone else."""
        scenario = self.scenario
        if user.pk != self.owner.pk and not user.is_staff:
            scenario = Scenario.objects.filter(owner=user).first() or make_scenario(owner=user)
        return f"{url}{'&' if '?' in url else '?'}sig={preview_link_sign(scenario=scenario)}"


@pytest.fixture
def world(user: User, other_user: User, staff_user: User) -> World:
    scenario = make_scenario(Status.ACTIVE, owner=user)
    make_prediction(scenario, boxes=[])
    snapshot = video_storage().save(
        f"snapshots/{scenario.pk}/1.jpg", ContentFile(b"\xff\xd8\xff\xe0 not really a jpeg")
    )
    make_event(scenario, 1, snapshot=snapshot)
    get_redis().set(preview.frame_key(scenario.pk), b"\xff\xd8\xff\xe0 not really a jpeg")
    Group.objects.create(name="operators")
    Upload.objects.create(owner=user, source=f"uploads/{'0' * 32}.mp4", size=1)  # for its admin
    tokens = {
        u.username: Token.objects.get_or_create(user=u)[0].key
        for u in (user, other_user, staff_user)
    }
    return World(user, other_user, staff_user, scenario, tokens)


def body_for(route: Route, method: str) -> dict[str, Any]:
    """A body that would do something if it got through."""
    if method != "post":
        return {}
    if route.route == "scenario/":
        return {"source": "short.mp4"}
    if route.route == "scenario/<str:scenario_id>/":
        return {"status": "init_shutdown"}
    return {}


def call(client: Client, method: str, url: str, route: Route) -> TestResponse:
    data = body_for(route, method)
    if method == "get":
        return client.get(url)
    send = getattr(client, method)  # client.post, .put, .patch or .delete
    return cast("TestResponse", send(url, data, content_type="application/json"))


def assert_login_redirect(response: HttpResponseBase, what: str) -> None:
    assert response.status_code == 302, (what, response.status_code)
    assert response["Location"].startswith("/admin/login/?next="), (what, response["Location"])


# --- the classification is complete and the walk is sound -------------------------------------


def test_every_url_is_classified() -> None:
    unclassified = [r.route for r in ROUTES if r.kind is None]
    assert not unclassified, (
        f"new URL patterns {unclassified}: classify them in tests/security/test_access.py"
    )
    walked = {r.route for r in ROUTES}
    assert set(CLASSIFIED) <= walked, f"stale entries: {set(CLASSIFIED) - walked}"
    assert walked >= ADMIN_OPEN, f"stale entries: {ADMIN_OPEN - walked}"
    # The three public endpoints, and nothing else, answer without a token.
    assert {r.route for r in API_ROUTES if r.kind == PUBLIC} == {
        "health/",
        "api/schema/",
        "api/docs/",
    }
    assert ADMIN_ROUTES, "the admin site is mounted"


@pytest.mark.django_db
def test_each_url_built_resolves_to_its_own_pattern(world: World) -> None:
    for route in ROUTES:
        url = world.url(route)
        match = resolve(url)
        assert match.route == route.route, (url, match.route, route.route)


# --- no credentials ---------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("route", by_kind(PUBLIC), ids=ids(by_kind(PUBLIC)))
def test_public_endpoints_answer_without_a_token(route: Route, world: World) -> None:
    url = world.url(route)
    assert Client().get(url).status_code == 200
    # A wrong token does not lock anyone out of them either.
    assert Client(HTTP_AUTHORIZATION="Token nope").get(url).status_code == 200


NON_PUBLIC = [r for r in API_ROUTES if r.kind != PUBLIC]


@pytest.mark.django_db
@pytest.mark.parametrize("route", NON_PUBLIC, ids=ids(NON_PUBLIC))
def test_no_or_a_wrong_token_is_401(route: Route, world: World) -> None:
    url = world.url(route)
    # Every implemented method, and the ones that are not (authentication comes first).
    for method in {*route.methods, "get", "post", "put", "patch", "delete"}:
        for client in (Client(), Client(HTTP_AUTHORIZATION="Token nope")):
            response = call(client, method, url, route)
            assert response.status_code == 401, (method, url, response.content)
            assert response["Content-Type"] == "application/json"
            assert response["WWW-Authenticate"].startswith("Token")
        # A wrong ?token= is no better, nor is the owner's right one; a bad link is refused.
        response = call(Client(), method, f"{url}?token=nope", route)
        assert response.status_code == 401, (method, url)
        response = call(Client(), method, world.query(world.owner, url), route)
        assert response.status_code == 401, (method, url)
        response = call(Client(), method, f"{url}?sig=nope", route)
        assert response.status_code == (403 if route.kind == OWNED_PREVIEW else 401), (method, url)
        assert response["Content-Type"] == "application/json"
    world.scenario.refresh_from_db()
    assert world.scenario.status == Status.ACTIVE
    assert Scenario.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("route", NON_PUBLIC, ids=ids(NON_PUBLIC))
def test_a_deactivated_users_token_is_401(route: Route, world: World) -> None:
    UserModel.objects.filter(pk=world.owner.pk).update(is_active=False)
    response = call(world.header(world.owner), route.methods[0], world.url(route), route)
    assert response.status_code == 401


PROTECTED_DASHBOARD = [r for r in DASHBOARD_ROUTES if r.route not in DASHBOARD_OPEN]


@pytest.mark.django_db
@pytest.mark.parametrize("route", PROTECTED_DASHBOARD, ids=ids(PROTECTED_DASHBOARD))
def test_dashboard_pages_send_the_logged_out_to_the_login(route: Route, world: World) -> None:
    url = world.url(route)
    # A token is not a session: the dashboard takes none (nor a preview link).
    for client in (Client(), world.header(world.owner)):
        for target in (url, world.link(world.owner, url)):
            for method in ("get", "post"):
                response = getattr(client, method)(target)
                assert response.status_code == 302, (method, target, response.status_code)
                assert response["Location"].startswith("/login/?next="), (method, target)
    world.scenario.refresh_from_db()
    assert world.scenario.status == Status.ACTIVE
    assert Scenario.objects.count() == 1


PROTECTED_ADMIN = [r for r in ADMIN_ROUTES if r.route not in ADMIN_OPEN]


@pytest.mark.django_db
@pytest.mark.parametrize("route", PROTECTED_ADMIN, ids=ids(PROTECTED_ADMIN))
def test_admin_pages_send_non_staff_to_the_login(route: Route, world: World) -> None:
    url = world.url(route)
    for who, client in (
        ("anonymous", Client()),
        ("non-staff session", world.session(world.other)),
        ("owner session", world.session(world.owner)),
        ("non-staff token", world.header(world.other)),
    ):
        for method in ("get", "post"):
            assert_login_redirect(call(client, method, url, route), f"{who} {method} {url}")
    assert Scenario.objects.count() == 1
    assert Group.objects.count() == 1


@pytest.mark.django_db
def test_admin_open_pages_give_non_staff_nothing(world: World) -> None:
    login, logout = (
        world.url(next(r for r in ADMIN_ROUTES if r.route == name))
        for name in (ADMIN_LOGIN, ADMIN_LOGOUT)
    )
    for client in (Client(), world.session(world.other)):
        # The login form, and nothing behind it.
        page = client.get(login)
        assert page.status_code == 200
        assert b'name="password"' in page.content
        # Not staff: logging out of the admin is a redirect to its index (then to the login).
        response = client.post(logout)
        assert response.status_code == 302
        assert response["Location"] == "/admin/"
    # A non-staff user cannot log in to the admin.
    client = Client()
    form = client.post(login, {"username": "bob", "password": "x", "next": "/admin/"})
    assert form.status_code == 200  # the form again, with an error
    assert "_auth_user_id" not in client.session


# --- a non-staff user -------------------------------------------------------------------------


@pytest.mark.django_db
def test_metrics_are_for_staff_only(world: World) -> None:
    route = next(r for r in API_ROUTES if r.kind == STAFF)
    url = world.url(route)
    for user in (world.owner, world.other):
        assert world.header(user).get(url).status_code == 403
        # Neither the query string nor a session is a way in.
        assert Client().get(world.query(user, url)).status_code == 401
        assert world.session(user).get(url).status_code == 401
    assert world.header(world.staff).get(url).status_code == 200
    assert Client().get(world.query(world.staff, url)).status_code == 401
    assert world.session(world.staff).get(url).status_code == 401


@pytest.mark.django_db
def test_any_user_creates_scenarios_of_their_own(world: World) -> None:
    route = next(r for r in API_ROUTES if r.route == "scenario/")
    url = world.url(route)
    response = call(world.header(world.other), "post", url, route)
    assert response.status_code == 201, response.content
    assert Scenario.objects.get(pk=response.json()["id"]).owner == world.other
    # The header only: neither ?token= nor a session.
    assert call(Client(), "post", world.query(world.other, url), route).status_code == 401
    assert call(world.session(world.other), "post", url, route).status_code == 401


@pytest.mark.django_db
def test_any_user_uploads_videos_with_the_header_only(
    world: World, video_root: Path, tmp_path: Path, settings: Settings
) -> None:
    settings.MISIS_VIDEO_ROOT = tmp_path
    route = next(r for r in API_ROUTES if r.route == "video/")
    url = world.url(route)

    def upload(client: Client, target: str) -> TestResponse:
        with (video_root / "short.mp4").open("rb") as body:
            return client.post(target, {"file": body})

    response = upload(world.header(world.other), url)
    assert response.status_code == 201, response.content
    assert (tmp_path / response.json()["source"]).is_file()
    # Neither ?token= nor a session: a cross-site form could post with a session cookie.
    assert upload(Client(), world.query(world.other, url)).status_code == 401
    assert upload(world.session(world.other), url).status_code == 401
    assert len(list((tmp_path / "uploads").iterdir())) == 1


def ways_in(world: World, route: Route, user: User, url: str) -> list[tuple[str, Client, str]]:
    """Each way ``user`` can present credentials to ``route``: (how, client, url)."""
    ways = [("header", world.header(user), url)]
    if route.kind == OWNED_PREVIEW:
        ways += [
            ("?sig=", Client(), world.link(user, url)),
            ("session", world.session(user), url),
        ]
    return ways


def ways_refused(world: World, route: Route, user: User, url: str) -> list[tuple[str, Client, str]]:
    """The credentials ``route`` does not take: the scenario API wants the header; nothing
    takes an API token in the query string."""
    refused = [("?token=", Client(), world.query(user, url))]
    if route.kind == OWNED_PREVIEW:
        return refused
    return [
        *refused,
        ("?sig=", Client(), world.link(user, url)),
        ("session", world.session(user), url),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("route", OWNED_ROUTES, ids=ids(OWNED_ROUTES))
def test_another_users_scenario_does_not_exist(route: Route, world: World) -> None:
    url = world.url(route)
    missing = world.url(route, scenario_id=str(uuid.uuid4()))
    for method in route.methods:
        for how, client, target in ways_in(world, route, world.other, url):
            response = call(client, method, target, route)
            assert response.status_code == 404, (how, method, target, response.content)
            # Exactly what a scenario that does not exist answers: no existence oracle.
            _, _, absent_target = next(
                w for w in ways_in(world, route, world.other, missing) if w[0] == how
            )
            absent = call(client, method, absent_target, route)
            assert (absent.status_code, absent.content) == (404, response.content), how
            assert str(world.scenario.pk) not in response.content.decode()
        for how, client, target in ways_refused(world, route, world.other, url):
            assert call(client, method, target, route).status_code == 401, (how, method)
        # A body the command would refuse is not looked at either: still 404, not 400.
        if method == "post":
            bad = world.header(world.other).post(url, {"status": "bogus"}, "application/json")
            assert bad.status_code == 404
    world.scenario.refresh_from_db()
    assert world.scenario.status == Status.ACTIVE


@pytest.mark.django_db
@pytest.mark.parametrize("route", OWNED_ROUTES, ids=ids(OWNED_ROUTES))
def test_the_owner_and_staff_reach_the_scenario(route: Route, world: World) -> None:
    url = world.url(route)
    for user in (world.owner, world.staff):
        for how, client, target in ways_in(world, route, user, url):
            response = client.get(target)
            assert response.status_code == 200, (user.username, how, target, response.content)
            if route.route.endswith(".jpg"):
                assert response["Content-Type"] == "image/jpeg"
            else:
                assert str(world.scenario.pk) in response.content.decode()
        for how, client, target in ways_refused(world, route, user, url):
            assert client.get(target).status_code == 401, (user.username, how)
    if "post" in route.methods:
        # Staff may command any scenario.
        response = call(world.header(world.staff), "post", url, route)
        assert response.status_code == 202, response.content
        world.scenario.refresh_from_db()
        assert world.scenario.status == Status.INIT_SHUTDOWN


@pytest.mark.django_db
def test_scenario_names_are_escaped_on_the_preview_page(world: World) -> None:
    Scenario.objects.filter(pk=world.scenario.pk).update(name="<script>alert(1)</script>")
    route = next(r for r in API_ROUTES if r.route == "scenario/<str:scenario_id>/view/")
    page = world.header(world.owner).get(world.url(route)).content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# --- staff ------------------------------------------------------------------------------------


# Admin pages a staff superuser gets as a page (the rest answer with a redirect or an error
# of their own: a bare URL of an object redirects to its change page, the "add" of a model
# that cannot be added is 403, logout wants a POST, autocomplete wants its parameters...).
ADMIN_PAGES = ("index", "app_list", "_changelist", "_change", "_history", "_delete", "jsi18n")


@pytest.mark.django_db
@pytest.mark.parametrize("route", ADMIN_ROUTES, ids=ids(ADMIN_ROUTES))
def test_staff_reach_the_admin_pages(route: Route, world: World) -> None:
    world.staff.is_superuser = True
    world.staff.save()
    url = world.url(route)
    response = world.session(world.staff).get(url)
    assert response.status_code < 500, (url, response.status_code)
    if response.status_code == 302:
        assert not response["Location"].startswith("/admin/login/"), url
    if route.route in (ADMIN_VIEW_ON_SITE, ADMIN_CATCH_ALL):
        # No model has get_absolute_url ("view on site"); the catch-all has no such page.
        assert response.status_code == 404, url
    elif route.pattern.name and route.pattern.name.endswith(ADMIN_PAGES):
        assert response.status_code == 200, (url, response.status_code)


# --- secrets come from the environment ----------------------------------------------------------

SETTINGS_DIR = ROOT / "misis" / "settings"
SETTINGS_FILES = sorted(SETTINGS_DIR.glob("*.py"))

SECRET_LITERALS = {
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret literal": re.compile(
        r"(?i)aws_secret_access_key['\"]?\s*[=:,]\s*[rbu]?['\"][^'\"]+['\"]"
    ),
    "password literal": re.compile(
        r"(?i)\w*(?:password|passwd|pwd)\w*['\"]?\s*[=:,]\s*(?:default\s*=\s*)?[rbu]?['\"][^'\"]+['\"]"
    ),
    "credentials in a URL": re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]*:[^/\s@'\"]+@"),
    "secret-shaped literal": re.compile(r"['\"][A-Za-z0-9/+]{40}['\"]"),
}


@pytest.mark.parametrize(
    "leak",
    [
        'AWS_ACCESS_KEY_ID = "AKIAABCDEFGHIJKLMNOP"',
        'AWS_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"',
        'os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "abc")',
        'EMAIL_HOST_PASSWORD = "hunter2"',
        'env("DATABASE_PASSWORD", default="hunter2")',
        'env.db("DATABASE_URL", default="postgres://app:hunter2@db:5432/misis")',
        'REDIS_URL = "redis://:hunter2@cache:6379/0"',
    ],
)
def test_the_secret_scan_catches_leaks(leak: str) -> None:
    assert any(p.search(leak) for p in SECRET_LITERALS.values()), leak


@pytest.mark.parametrize("path", SETTINGS_FILES, ids=[p.name for p in SETTINGS_FILES])
def test_no_secret_literal_in_settings(path: Path) -> None:
    text = path.read_text()
    found = {
        name: match.group(0)
        for name, pattern in SECRET_LITERALS.items()
        for match in pattern.finditer(text)
    }
    assert not found, f"{path.name}: secrets belong in the environment: {found}"


def test_dev_and_test_secret_keys_are_refused_by_production() -> None:
    # local.py and test.py default DJANGO_SECRET_KEY for convenience; production.py refuses any
    # key containing "insecure", so those defaults can never serve production.
    defaults = [
        (path.name, value)
        for path in SETTINGS_FILES
        for value in re.findall(
            r"setdefault\(\s*['\"]DJANGO_SECRET_KEY['\"]\s*,\s*['\"]([^'\"]*)['\"]",
            path.read_text(),
        )
    ]
    assert defaults, "the scan finds the known dev/test defaults"
    for name, value in defaults:
        assert "insecure" in value, (name, value)
    assert '"insecure" in SECRET_KEY' in (SETTINGS_DIR / "production.py").read_text()


def test_base_settings_take_the_secret_key_from_the_environment_only() -> None:
    tree = ast.parse((SETTINGS_DIR / "base.py").read_text())
    [value] = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "SECRET_KEY" for t in node.targets)
    ]
    assert isinstance(value, ast.Call), "SECRET_KEY = env(...)"
    assert [ast.literal_eval(a) for a in value.args] == ["DJANGO_SECRET_KEY"]
    assert not value.keywords, "no default for DJANGO_SECRET_KEY"

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DJANGO_SECRET_KEY", "DJANGO_SETTINGS_MODULE")
    }
    result = subprocess.run(
        [sys.executable, "-c", "import misis.settings.base"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "DJANGO_SECRET_KEY" in result.stderr


@pytest.mark.django_db
def test_source_credentials_stay_out_of_the_logs(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    # The contract takes onvif://user:pass@cam (and rtsp:// with userinfo); the password is a
    # secret of the camera, not something for every log reader.
    caplog.set_level(logging.DEBUG)
    response = world.header(world.owner).post(
        "/scenario/", {"source": "onvif://admin:s3cr3t-pw@cam.local"}, "application/json"
    )
    assert response.status_code == 201
    assert caplog.records, "the creation is logged"
    assert "s3cr3t-pw" not in caplog.text
