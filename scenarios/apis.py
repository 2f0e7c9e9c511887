"""Thin views: validate, call one service or selector, serialize."""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework import status as http
from rest_framework.exceptions import NotAuthenticated, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from scenarios import selectors
from scenarios.models import Status
from scenarios.params import (
    CONFIDENCE_RANGE,
    IMGSZ_RANGE,
    RECONNECT_TIMEOUT_RANGE,
    TARGET_FPS_RANGE,
    storable_text,
)
from scenarios.serializers import (
    ConflictSerializer,
    ErrorSerializer,
    PredictionPageSerializer,
    ScenarioCommandSerializer,
    ScenarioCreateSerializer,
    ScenarioPageSerializer,
    ScenarioSerializer,
)
from scenarios.services import commands


def _authenticated(request: Request) -> User:
    """The user behind the request (IsAuthenticated, the default permission, admits no other)."""
    user = request.user
    if not isinstance(user, get_user_model()):
        raise NotAuthenticated()
    return user


# --- OpenAPI documentation (drf-spectacular); the views' behaviour does not depend on it -------

SCENARIO_ID = OpenApiParameter(
    "scenario_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The scenario's id."
)
# DRF's validation errors: each bad field (or "non_field_errors") maps to its messages.
VALIDATION_ERROR = OpenApiResponse(
    response={
        "type": "object",
        "additionalProperties": {},
        "description": "Each bad field, by name, with what is wrong with it.",
    },
    description="Bad input; the body names each offending field.",
    examples=[
        OpenApiExample(
            "bad source",
            value={"source": ["scheme 'ftp' is not supported"]},
            response_only=True,
            status_codes=["400"],
        )
    ],
)
UNAUTHORIZED = OpenApiResponse(ErrorSerializer, description="No token, or a wrong one.")
NOT_FOUND = OpenApiResponse(
    ErrorSerializer, description="No such scenario, or it belongs to another user."
)
THROTTLED = OpenApiResponse(
    ErrorSerializer,
    description="Too many requests (MISIS_THROTTLE_USER); or, for a create or a start, the"
    " owner's MISIS_QUOTA_ACTIVE_SCENARIOS running scenarios are reached.",
)
TOO_LARGE = OpenApiResponse(ErrorSerializer, description="JSON body over MISIS_JSON_MAX_BYTES.")
PARAMS_HELP = (
    f"`params` (all optional): `target_fps` {TARGET_FPS_RANGE}, `confidence` {CONFIDENCE_RANGE},"
    f" `classes` (list of labels), `imgsz` {IMGSZ_RANGE}, `loop` (bool), `reconnect_timeout`"
    f" seconds {RECONNECT_TIMEOUT_RANGE}. Unknown params are refused."
)


def list_filters(request: Request) -> tuple[list[str], str | None]:
    """``?status=`` (repeatable, each a known status) and ``?name=`` of GET /scenario/."""
    statuses = request.query_params.getlist("status")
    unknown = sorted({s for s in statuses if s not in Status.values})
    if unknown:
        raise ValidationError(
            {"status": [f"unknown status {unknown[0]!r}; one of {', '.join(Status.values)}"]}
        )
    name = single_param(request, "name") or None
    if name is not None and (len(name) > selectors.NAME_FILTER_MAX or not storable_text(name)):
        raise ValidationError(
            {"name": [f"at most {selectors.NAME_FILTER_MAX} characters, no NUL or surrogates"]}
        )
    return statuses, name


class ScenarioListCreateApi(APIView):
    @extend_schema(
        operation_id="scenario_list",
        summary="List your scenarios",
        description="Your scenarios (staff: everyone's), newest first (`created_at`, then `id`,"
        " descending), paged by an opaque cursor: follow `next` until it is null. Filters"
        " combine; a filter or limit that changes between pages is taken from the request.",
        tags=["scenarios"],
        parameters=[
            OpenApiParameter(
                "limit",
                {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": selectors.SCENARIO_PAGE_MAX,
                    "default": selectors.SCENARIO_PAGE,
                },
                OpenApiParameter.QUERY,
                required=False,
                description=f"Page size, 1 to {selectors.SCENARIO_PAGE_MAX}; out of range is a"
                " 400.",
            ),
            OpenApiParameter(
                "cursor",
                OpenApiTypes.STR,
                OpenApiParameter.QUERY,
                required=False,
                description="Where the page starts: the cursor in the previous page's `next`"
                " (opaque and signed; anything else is a 400).",
            ),
            OpenApiParameter(
                "status",
                {"type": "array", "items": {"type": "string", "enum": list(Status.values)}},
                OpenApiParameter.QUERY,
                required=False,
                explode=True,
                description="Only scenarios in one of these statuses (repeat the parameter for"
                " more); an unknown status is a 400.",
            ),
            OpenApiParameter(
                "name",
                {"type": "string", "maxLength": selectors.NAME_FILTER_MAX},
                OpenApiParameter.QUERY,
                required=False,
                description="Only scenarios whose name contains this text, ignoring case.",
            ),
        ],
        responses={
            200: ScenarioPageSerializer,
            400: VALIDATION_ERROR,
            401: UNAUTHORIZED,
            429: THROTTLED,
        },
    )
    def get(self, request: Request) -> Response:
        limit = int_param(request, "limit", selectors.SCENARIO_PAGE, 1, selectors.SCENARIO_PAGE_MAX)
        statuses, name = list_filters(request)
        page = selectors.scenario_page(
            user=request.user,
            limit=limit or selectors.SCENARIO_PAGE,
            cursor=single_param(request, "cursor") or None,
            statuses=statuses,
            name=name,
        )
        next_url = None
        if page.next_cursor is not None:
            query = request.query_params.copy()
            query["cursor"] = page.next_cursor
            next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
        results = ScenarioSerializer(page.results, many=True).data
        return Response({"next": next_url, "results": results})

    @extend_schema(
        operation_id="scenario_create",
        summary="Create and start a scenario",
        description="`source` is an rtsp(s)://, onvif://, http(s):// or s3:// URL, or a path"
        " relative to the video root. " + PARAMS_HELP,
        tags=["scenarios"],
        request=ScenarioCreateSerializer,
        examples=[
            OpenApiExample(
                "local file",
                value={
                    "source": "sample.mp4",
                    "name": "lobby",
                    "params": {"target_fps": 5, "confidence": 0.25, "classes": ["person"]},
                },
                request_only=True,
            ),
            OpenApiExample(
                "camera", value={"source": "rtsp://cam.local/stream"}, request_only=True
            ),
        ],
        responses={
            201: OpenApiResponse(ScenarioSerializer, description="Created, status init_startup."),
            400: VALIDATION_ERROR,
            401: UNAUTHORIZED,
            413: TOO_LARGE,
            429: THROTTLED,
        },
    )
    def post(self, request: Request) -> Response:
        if not isinstance(request.data, dict):
            raise ValidationError({"non_field_errors": ["body must be a JSON object"]})
        data = ScenarioCreateSerializer(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        scenario = commands.scenario_create(owner=_authenticated(request), **data.validated_data)
        return Response(ScenarioSerializer(scenario).data, status=http.HTTP_201_CREATED)


class ScenarioDetailApi(APIView):
    @extend_schema(
        operation_id="scenario_retrieve",
        summary="Get a scenario",
        tags=["scenarios"],
        parameters=[SCENARIO_ID],
        responses={200: ScenarioSerializer, 401: UNAUTHORIZED, 404: NOT_FOUND, 429: THROTTLED},
    )
    def get(self, request: Request, scenario_id: str) -> Response:
        scenario = selectors.scenario_get(user=request.user, scenario_id=scenario_id)
        return Response(ScenarioSerializer(scenario).data)

    @extend_schema(
        operation_id="scenario_command",
        summary="Stop or restart a scenario",
        description="`init_shutdown` stops the scenario, `init_startup` starts it again.",
        tags=["scenarios"],
        parameters=[SCENARIO_ID],
        request=ScenarioCommandSerializer,
        responses={
            200: OpenApiResponse(
                ScenarioSerializer,
                description="The command's effect is already under way or done; nothing changed.",
            ),
            202: OpenApiResponse(ScenarioSerializer, description="Command accepted."),
            400: VALIDATION_ERROR,
            401: UNAUTHORIZED,
            404: NOT_FOUND,
            409: OpenApiResponse(
                ConflictSerializer,
                description="The state machine cannot take this command from the current status.",
            ),
            413: TOO_LARGE,
            429: THROTTLED,
        },
    )
    def post(self, request: Request, scenario_id: str) -> Response:
        scenario = selectors.scenario_get(user=request.user, scenario_id=scenario_id)
        if not isinstance(request.data, dict):
            raise ValidationError({"status": ["body must be a JSON object with a status"]})
        data = ScenarioCommandSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if data.validated_data["status"] == Status.INIT_SHUTDOWN:
            scenario, changed = commands.scenario_request_stop(scenario_id=scenario.pk)
        else:
            scenario, changed = commands.scenario_request_start(scenario_id=scenario.pk)
        return Response(
            ScenarioSerializer(scenario).data,
            status=http.HTTP_202_ACCEPTED if changed else http.HTTP_200_OK,
        )

    @extend_schema(
        operation_id="scenario_delete",
        summary="Delete a scenario",
        description="Stops the scenario if it runs (its runner publishes nothing more) and"
        " deletes it with its predictions, events and stored snapshots. Later requests for it"
        " answer 404.",
        tags=["scenarios"],
        parameters=[SCENARIO_ID],
        responses={
            204: OpenApiResponse(description="Deleted."),
            401: UNAUTHORIZED,
            404: NOT_FOUND,
            429: THROTTLED,
        },
    )
    def delete(self, request: Request, scenario_id: str) -> Response:
        scenario = selectors.scenario_get(user=request.user, scenario_id=scenario_id)
        commands.delete_scenario(scenario)
        return Response(status=http.HTTP_204_NO_CONTENT)


def single_param(request: Request, name: str) -> str | None:
    """A query parameter that takes one value; given twice (``?limit=5&limit=9``) it is
    refused rather than one of the two silently chosen."""
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise ValidationError({name: ["given more than once; give it once"]})
    return values[0] if values else None


def int_param(
    request: Request, name: str, default: int | None, minimum: int, maximum: int | None = None
) -> int | None:
    raw = single_param(request, name)
    if raw is None or raw == "":
        return default
    bounds = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError({name: [f"must be an integer {bounds}"]}) from None
    # Out of range is refused, not capped: the schema's maximum is what the server enforces.
    if value < minimum or (maximum is not None and value > maximum):
        raise ValidationError({name: [f"must be an integer {bounds}"]})
    return value


def page_responses(page: type[serializers.Serializer[Any]]) -> dict[int, Any]:
    """The answers of a paged list of one scenario: the page, or why not."""
    return {200: page, 400: VALIDATION_ERROR, 401: UNAUTHORIZED, 404: NOT_FOUND, 429: THROTTLED}


def page_params(request: Request, *, after_minimum: int, default: int) -> tuple[int | None, int]:
    """``?after=`` (the cursor) and ``?limit=`` (1 to MAX_PAGE) of a paged list."""
    after = int_param(request, "after", None, after_minimum)
    limit = int_param(request, "limit", default, 1, selectors.MAX_PAGE)
    return after, limit or default


class PredictionListApi(APIView):
    @extend_schema(
        operation_id="prediction_list",
        summary="Read a scenario's predictions",
        description="One entry per analysed frame, ordered by `frame_index` ascending. Poll with"
        " `after` set to the last `frame_index` seen (or follow `next`).",
        tags=["predictions"],
        parameters=[
            SCENARIO_ID,
            OpenApiParameter(
                "after",
                {"type": "integer", "minimum": -1},
                OpenApiParameter.QUERY,
                required=False,
                description="Only frames with a greater frame_index (the polling cursor).",
            ),
            OpenApiParameter(
                "limit",
                {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": selectors.MAX_PAGE,
                    "default": selectors.DEFAULT_PAGE,
                },
                OpenApiParameter.QUERY,
                required=False,
                description=f"Page size, 1 to {selectors.MAX_PAGE}; out of range is a 400.",
            ),
        ],
        responses=page_responses(PredictionPageSerializer),
    )
    def get(self, request: Request, scenario_id: str) -> HttpResponse:
        pk = selectors.scenario_pk(scenario_id)
        try:
            after, limit = page_params(request, after_minimum=-1, default=selectors.DEFAULT_PAGE)
        except ValidationError:
            # A scenario the caller may not see is a 404 whatever the query says.
            selectors.scenario_get(user=request.user, scenario_id=pk)
            raise
        page = selectors.prediction_page(
            user=request.user, scenario_id=pk, after=after, limit=limit
        )
        next_url = None
        if page.count == limit:
            next_url = request.build_absolute_uri(
                f"{request.path}?after={page.last_frame_index}&limit={limit}"
            )
        head = json.dumps(
            {"scenario_id": str(page.scenario_id), "status": page.status, "next": next_url}
        )
        # The results array comes from PostgreSQL already rendered (see the selector).
        return HttpResponse(
            f'{head[:-1]}, "results": {page.results_json}}}', content_type="application/json"
        )
