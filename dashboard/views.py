"""The operator dashboard: thin views over the services and selectors the API uses.

``/``          the grid of the user's scenarios (staff: everyone's) and the create form;
               POST creates through ScenarioCreateSerializer and ``scenario_create``, as
               POST /scenario/ does.
``/dashboard/state/``  the cards' data as JSON, polled by dashboard.js.
``/dashboard/<id>/stop|start/``  POST: the commands of POST /scenario/<id>/.
``/dashboard/<id>/delete/``  POST: ``delete_scenario``, as DELETE /scenario/<id>/.
``/login/``, ``/logout/``  Django's session login (throttled like the admin's) and logout.

Every POST carries Django's CSRF token (CsrfViewMiddleware, never exempted here). Another
user's scenario is a 404 on every action (scenarios.selectors). Pages are sent with a
Content-Security-Policy that allows only this origin's scripts, styles and images: user text
is escaped by the templates, and an injected tag could not run a script anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from dashboard.forms import FIELDS, create_body, flat_errors
from dashboard.selectors import dashboard_scenarios, scenario_card, source_choices
from misis.exceptions import ApiError
from misis.throttling import login_throttled
from scenarios import selectors
from scenarios.serializers import ScenarioCreateSerializer
from scenarios.services import commands

# How often dashboard.js polls the cards' state and reloads running scenarios' frames, ms.
STATE_REFRESH_MS = 1000
FRAME_REFRESH_MS = 1000

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


def _page(response: HttpResponseBase) -> HttpResponseBase:
    response["Content-Security-Policy"] = CSP
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "same-origin"
    return response


class DashboardLoginView(auth_views.LoginView):
    """Django's login form; its POSTs counted like the admin's (MISIS_THROTTLE_LOGIN)."""

    template_name = "dashboard/login.html"
    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return login_throttled(request, "dashboard") or super().post(request, *args, **kwargs)

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        return _page(super().dispatch(request, *args, **kwargs))


class DashboardLogoutView(auth_views.LogoutView):
    """POST only (Django's), so that a link or an image on another site cannot log one out."""

    next_page = "login"


def _user(request: HttpRequest) -> User:
    """The logged-in user (login_required has turned everyone else away)."""
    user = request.user
    if not isinstance(user, get_user_model()):
        raise PermissionDenied
    return user


def _render_index(
    request: HttpRequest,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
) -> HttpResponseBase:
    cards = [scenario_card(s) for s in dashboard_scenarios(user=request.user)]
    config = {
        "state_url": reverse("dashboard-state"),
        "state_ms": STATE_REFRESH_MS,
        "frame_ms": FRAME_REFRESH_MS,
    }
    context = {
        "cards": cards,
        "config": config,
        "form": form or {"params": ""},
        "errors": errors or {},
        "source_choices": source_choices(user=request.user),
    }
    return _page(render(request, "dashboard/index.html", context, status=status))


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def index(request: HttpRequest) -> HttpResponseBase:
    if request.method != "POST":
        return _render_index(request)
    form = {name: request.POST.get(name, "") for name in FIELDS}
    body, errors = create_body(request.POST)
    if not errors:
        data = ScenarioCreateSerializer(data=body, context={"request": request})
        if data.is_valid():
            try:
                scenario = commands.scenario_create(owner=_user(request), **data.validated_data)
            except ApiError as exc:  # the owner's quota of running scenarios
                errors = {"form": [str(exc)]}
            else:
                messages.success(request, f"Scenario {scenario.pk} created.")
                return redirect("dashboard")
        else:
            errors = {key: flat_errors(value) for key, value in data.errors.items()}
    return _render_index(request, form=form, errors=errors, status=400)


@login_required
@require_GET
def state(request: HttpRequest) -> HttpResponseBase:
    cards = [scenario_card(s) for s in dashboard_scenarios(user=request.user)]
    return _page(JsonResponse({"scenarios": cards}))


def _command(
    request: HttpRequest,
    scenario_id: object,
    command: Callable[..., tuple[Any, bool]],
    done: str,
) -> HttpResponseBase:
    scenario = selectors.scenario_get(user=request.user, scenario_id=scenario_id)  # else 404
    try:
        _, changed = command(scenario_id=scenario.pk)
    except ApiError as exc:  # not allowed from this status, or the quota
        messages.error(request, f"Scenario {scenario.pk}: {exc}")
    else:
        messages.info(request, f"Scenario {scenario.pk}: {done if changed else 'already so'}.")
    return redirect("dashboard")


@login_required
@require_POST
def stop(request: HttpRequest, scenario_id: object) -> HttpResponseBase:
    return _command(request, scenario_id, commands.scenario_request_stop, "stop requested")


@login_required
@require_POST
def start(request: HttpRequest, scenario_id: object) -> HttpResponseBase:
    return _command(request, scenario_id, commands.scenario_request_start, "start requested")


@login_required
@require_POST
def delete(request: HttpRequest, scenario_id: object) -> HttpResponseBase:
    scenario = selectors.scenario_get(user=request.user, scenario_id=scenario_id)  # else 404
    pk = scenario.pk
    try:
        commands.delete_scenario(scenario)
    except ApiError as exc:  # deleted by a concurrent request first
        messages.error(request, f"Scenario {pk}: {exc}")
    else:
        messages.info(request, f"Scenario {pk} deleted.")
    return redirect("dashboard")
