"""Thin views: validate, call one service or selector, serialize."""

from __future__ import annotations

import json

from django.http import HttpResponse
from rest_framework import status as http
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from scenarios import selectors, services
from scenarios.models import Status
from scenarios.serializers import (
    ScenarioCommandSerializer,
    ScenarioCreateSerializer,
    ScenarioSerializer,
)


class ScenarioCreateApi(APIView):
    def post(self, request: Request) -> Response:
        if not isinstance(request.data, dict):
            raise ValidationError({"non_field_errors": ["body must be a JSON object"]})
        data = ScenarioCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        scenario = services.scenario_create(owner=request.user, **data.validated_data)
        return Response(ScenarioSerializer(scenario).data, status=http.HTTP_201_CREATED)


class ScenarioDetailApi(APIView):
    def get(self, request: Request, scenario_id: str) -> Response:
        scenario = selectors.scenario_get(user=request.user, scenario_id=scenario_id)
        return Response(ScenarioSerializer(scenario).data)

    def post(self, request: Request, scenario_id: str) -> Response:
        scenario = selectors.scenario_get(user=request.user, scenario_id=scenario_id)
        if not isinstance(request.data, dict):
            raise ValidationError({"status": ["body must be a JSON object with a status"]})
        data = ScenarioCommandSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if data.validated_data["status"] == Status.INIT_SHUTDOWN:
            scenario, changed = services.scenario_request_stop(scenario_id=scenario.pk)
        else:
            scenario, changed = services.scenario_request_start(scenario_id=scenario.pk)
        return Response(
            ScenarioSerializer(scenario).data,
            status=http.HTTP_202_ACCEPTED if changed else http.HTTP_200_OK,
        )


def _int_param(request: Request, name: str, default: int | None, minimum: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError({name: [f"must be an integer >= {minimum}"]}) from None
    if value < minimum:
        raise ValidationError({name: [f"must be an integer >= {minimum}"]})
    return value


class PredictionListApi(APIView):
    def get(self, request: Request, scenario_id: str) -> HttpResponse:
        scenario = selectors.scenario_get(user=request.user, scenario_id=scenario_id)
        after = _int_param(request, "after", None, -1)
        limit = _int_param(request, "limit", selectors.DEFAULT_PAGE, 1) or selectors.DEFAULT_PAGE
        limit = min(limit, selectors.MAX_PAGE)
        page = selectors.prediction_page(scenario=scenario, after=after, limit=limit)
        next_url = None
        if page.count == limit:
            next_url = request.build_absolute_uri(
                f"{request.path}?after={page.last_frame_index}&limit={limit}"
            )
        head = json.dumps(
            {"scenario_id": str(scenario.pk), "status": scenario.status, "next": next_url}
        )
        # The results array comes from PostgreSQL already rendered (see the selector).
        return HttpResponse(
            f'{head[:-1]}, "results": {page.results_json}}}', content_type="application/json"
        )
