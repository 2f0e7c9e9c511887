"""Live preview of a scenario: its newest annotated frame, and a page that shows it refreshing.

``GET /scenario/<id>/frame.jpg``  the newest JPEG the runner stored (``runner.preview``).
``GET /scenario/<id>/view/``      an HTML page: the frame, refreshing itself, and the scenario's
                                   status and counters, polled from the JSON API.
``GET /scenario/<id>/view/state/`` the scenario's JSON (as ``GET /scenario/<id>/``) for a page
                                   opened with a session: the API proper takes tokens only.

Authentication, on these views only: the ``Authorization: Token`` header, a Django session
(someone logged in through the admin), or ``?token=<key>`` in the query string, since an
``<img>`` tag or a link cannot send a header. Without any of them: 401 (JSON, also for the page).
Another user's scenario is invisible: 404 (staff see all). Errors are always JSON.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from runner import preview
from runner.redact import redact
from scenarios import selectors
from scenarios.serializers import ScenarioSerializer

# Refresh periods of the page, milliseconds.
FRAME_REFRESH_MS = 500
STATE_REFRESH_MS = 1000


class QueryTokenAuthentication(TokenAuthentication):
    """``?token=<key>``: a DRF token in the query string, for ``<img src>`` and plain links.

    A query string ends up in access logs and browser history: only the preview views take it.
    """

    def authenticate(self, request: Request) -> tuple[AbstractBaseUser, Any] | None:
        key = request.query_params.get("token")
        if not key:
            return None
        return self.authenticate_credentials(key)


class FirstRendererNegotiation(BaseContentNegotiation):
    """Errors are always JSON, whatever the Accept header (a browser's asks for images/HTML).

    Successful answers are plain Django responses, which skip rendering altogether.
    """

    def select_parser(self, request: Request, parsers: list[Any]) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(
        self, request: Request, renderers: list[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        return renderers[0], renderers[0].media_type


@extend_schema(exclude=True)  # a browser feature: the OpenAPI schema documents the contract
class _PreviewView(APIView):
    # The header first: its WWW-Authenticate makes a refusal a 401 rather than a 403.
    authentication_classes = [TokenAuthentication, QueryTokenAuthentication, SessionAuthentication]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = FirstRendererNegotiation


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    return response


class ScenarioFrameApi(_PreviewView):
    def get(self, request: Request, scenario_id: str) -> HttpResponse:
        scenario = selectors.scenario_get(user=request.user, scenario_id=scenario_id)
        jpeg = preview.latest_frame(scenario.pk)
        if jpeg is None:
            raise Http404("no frame yet")
        return _no_store(HttpResponse(jpeg, content_type="image/jpeg"))


class ScenarioStateApi(_PreviewView):
    def get(self, request: Request, scenario_id: str) -> Response:
        scenario = selectors.scenario_get(user=request.user, scenario_id=scenario_id)
        response = Response(ScenarioSerializer(scenario).data)
        response["Cache-Control"] = "no-store"
        return response


class ScenarioPreviewPage(_PreviewView):
    def get(self, request: Request, scenario_id: str) -> HttpResponse:
        scenario = selectors.scenario_get(user=request.user, scenario_id=scenario_id)
        sid = str(scenario.pk)
        # Opened with ?token=, the page keeps using that token (a header for the JSON, the query
        # string for the image); opened with a session or a header, it relies on the session.
        token = request.query_params.get("token") or None
        if token is not None and not isinstance(
            request.successful_authenticator, QueryTokenAuthentication
        ):
            token = None
        config = {
            "id": sid,
            "token": token,
            "frame_url": reverse("scenario-frame", args=[sid]),
            # With a token, the API itself; with a session, the same body from this module.
            "state_url": reverse(
                "scenario-detail" if token else "scenario-preview-state", args=[sid]
            ),
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
