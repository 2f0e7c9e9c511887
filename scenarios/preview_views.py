"""Live preview of a scenario: its newest annotated frame, and a page that shows it refreshing.

``GET /scenario/<id>/frame.jpg``  the newest JPEG the runner stored (``scenarios.preview``).
``GET /scenario/<id>/view/``      an HTML page: the frame, refreshing itself, and the scenario's
                                   status and counters, polled from the JSON API.
``GET /scenario/<id>/view/state/`` the scenario's JSON (as ``GET /scenario/<id>/``, less its
                                   preview_url) for the page: the API proper takes header
                                   tokens only.

Authentication, on these views only: the ``Authorization: Token`` header, a Django session
(someone logged in through the admin), or a signed preview link, ``?sig=`` (preview_links.py),
since an ``<img>`` tag or a link cannot send a header. Without any of them: 401 (JSON, also
for the page). A link that is expired, tampered with or signed for another purpose: 403; a
valid link opens its own scenario only (any other: 404). An API token in the query string
(``?token=``) is not taken: it would be written to access logs and browser history.
Another user's scenario is invisible: 404 (staff see all). Errors are always JSON.

The frame and the page mark the scenario watched (``preview.mark_watched``) once the request
is allowed to see it: the runner encodes preview frames only while someone watches.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework.authentication import (
    BaseAuthentication,
    SessionAuthentication,
    TokenAuthentication,
)
from rest_framework.exceptions import PermissionDenied
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from scenarios import preview, selectors
from scenarios.models import Scenario
from scenarios.preview_links import (
    PreviewGrant,
    PreviewLinkExpired,
    PreviewLinkInvalid,
    preview_link_check,
)
from scenarios.serializers import ScenarioSerializer
from sources.redact import redact

# Refresh periods of the page, milliseconds.
FRAME_REFRESH_MS = 500
STATE_REFRESH_MS = 1000


class PreviewLinkAuthentication(BaseAuthentication):
    """``?sig=<signed link>``: the scenario's owner, for that scenario only (``request.auth``)."""

    def authenticate(self, request: Request) -> tuple[AbstractBaseUser, PreviewGrant] | None:
        sig = request.query_params.get("sig")
        if not sig:
            return None
        try:
            grant = preview_link_check(sig=sig)
        except PreviewLinkExpired:
            raise PermissionDenied(
                "this preview link has expired; GET /scenario/<id>/ gives a fresh preview_url"
            ) from None
        except PreviewLinkInvalid:
            raise PermissionDenied("this preview link is not valid") from None
        owner = get_user_model().objects.filter(pk=grant.owner_id, is_active=True).first()
        if owner is None:
            raise PermissionDenied("this preview link is not valid")
        return owner, grant


class FirstRendererNegotiation(BaseContentNegotiation):
    """Errors are always JSON, whatever the Accept header (a browser's asks for images/HTML).

    Successful answers are plain Django responses, which skip rendering altogether.
    """

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        return next(iter(parsers), None)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        first = next(iter(renderers))  # renderer_classes below: never empty
        return first, first.media_type


@extend_schema(exclude=True)  # a browser feature: the OpenAPI schema documents the contract
class _PreviewView(APIView):
    # The header first: its WWW-Authenticate makes a refusal a 401 rather than a 403.
    authentication_classes = [TokenAuthentication, PreviewLinkAuthentication, SessionAuthentication]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = FirstRendererNegotiation


def _scenario(request: Request, scenario_id: str) -> Scenario:
    """The scenario, if the request may see it; a preview link sees its own scenario only."""
    grant = request.auth if isinstance(request.auth, PreviewGrant) else None
    if grant is not None:
        try:
            if uuid.UUID(str(scenario_id)) != grant.scenario_id:
                raise Http404("no such scenario")
        except ValueError:
            raise Http404("no such scenario") from None
    return selectors.scenario_get(user=request.user, scenario_id=scenario_id)


def _watched_scenario(request: Request, scenario_id: str) -> Scenario:
    """``_scenario``, then marked watched: only a request allowed to see it gets that far."""
    scenario = _scenario(request, scenario_id)
    preview.mark_watched(scenario.pk)
    return scenario


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    return response


class ScenarioFrameApi(_PreviewView):
    def get(self, request: Request, scenario_id: str) -> HttpResponse:
        scenario = _watched_scenario(request, scenario_id)
        jpeg = preview.latest_frame(scenario.pk)
        if jpeg is None:
            raise Http404("no frame yet")
        return _no_store(HttpResponse(jpeg, content_type="image/jpeg"))


class ScenarioStateApi(_PreviewView):
    def get(self, request: Request, scenario_id: str) -> Response:
        scenario = _scenario(request, scenario_id)
        data = dict(ScenarioSerializer(scenario).data)
        # No fresh link here: a link polling this would otherwise renew itself forever.
        data.pop("preview_url", None)
        response = Response(data)
        response["Cache-Control"] = "no-store"
        return response


class ScenarioPreviewPage(_PreviewView):
    def get(self, request: Request, scenario_id: str) -> HttpResponse:
        scenario = _watched_scenario(request, scenario_id)
        sid = str(scenario.pk)
        # Opened with a link, the page passes it on to its frame and state requests; opened
        # with a session (or a header), it relies on the session.
        grant = request.auth if isinstance(request.auth, PreviewGrant) else None
        config = {
            "id": sid,
            "sig": grant.sig if grant is not None else None,
            "frame_url": reverse("scenario-frame", args=[sid]),
            "state_url": reverse("scenario-preview-state", args=[sid]),
            "frame_ms": FRAME_REFRESH_MS,
            "state_ms": STATE_REFRESH_MS,
        }
        response = render(
            request._request,
            "scenarios/preview.html",
            {"scenario": scenario, "source": redact(scenario.source), "config": config},
        )
        response["Referrer-Policy"] = "no-referrer"
        return _no_store(response)
