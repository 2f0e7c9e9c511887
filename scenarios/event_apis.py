"""GET /event/<scenario_id>/ (paged like predictions) and the snapshot of each event."""

from __future__ import annotations

from django.http import Http404, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from scenarios import selectors
from scenarios.apis import (
    NOT_FOUND,
    SCENARIO_ID,
    UNAUTHORIZED,
    page_params,
    page_responses,
)
from scenarios.models import EventType
from scenarios.serializers import EventPageSerializer
from scenarios.webhooks import event_json
from sources.storage import video_storage


class EventListApi(APIView):
    @extend_schema(
        operation_id="event_list",
        summary="Read a scenario's events",
        description="Zone and line events in `seq` order (from 1, without gaps). Poll with"
        " `after` set to the last `seq` seen (or follow `next`).",
        tags=["events"],
        parameters=[
            SCENARIO_ID,
            OpenApiParameter("after", {"type": "integer", "minimum": 0}, required=False),
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": selectors.MAX_PAGE},
                required=False,
            ),
            OpenApiParameter(
                "type",
                {"type": "string", "enum": list(EventType.values)},
                required=False,
                description="Only events of this type (repeatable).",
            ),
        ],
        responses=page_responses(EventPageSerializer),
    )
    def get(self, request: Request, scenario_id: str) -> Response:
        scenario = selectors.scenario_get(user=request.user, scenario_id=scenario_id)
        after, limit = page_params(request, after_minimum=0, default=selectors.EVENT_PAGE)
        types = request.query_params.getlist("type")
        unknown = sorted(set(types) - set(EventType.values))
        if unknown:
            raise ValidationError({"type": [f"unknown {unknown}; one of {list(EventType.values)}"]})
        events = selectors.event_page(scenario=scenario, after=after, limit=limit, types=types)
        next_url = None
        if len(events) == limit:
            query = request.query_params.copy()
            query["after"], query["limit"] = str(events[-1].seq), str(limit)
            next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
        results = [event_json(e) for e in events]
        for item in results:
            if item["snapshot"]:
                item["snapshot"] = request.build_absolute_uri(item["snapshot"])
        return Response({"scenario_id": str(scenario.pk), "next": next_url, "results": results})


class EventSnapshotApi(APIView):
    @extend_schema(
        operation_id="event_snapshot",
        summary="The frame of an event, annotated",
        description="JPEG of the event's frame with its box, track id and zone or line drawn.",
        tags=["events"],
        parameters=[SCENARIO_ID, OpenApiParameter("seq", int, OpenApiParameter.PATH)],
        responses={
            (200, "image/jpeg"): OpenApiResponse(OpenApiTypes.BINARY),
            401: UNAUTHORIZED,
            404: NOT_FOUND,
        },
    )
    def get(self, request: Request, scenario_id: str, seq: str) -> HttpResponse:
        scenario = selectors.scenario_get(user=request.user, scenario_id=scenario_id)
        if not seq.isdigit() or len(seq) > 18:
            raise Http404("no such event")
        event = selectors.event_get(scenario=scenario, seq=int(seq))
        if not event.snapshot:
            raise Http404("this event has no snapshot")
        try:
            with video_storage().open(event.snapshot, "rb") as handle:
                jpeg = handle.read()  # tens of KiB
        except (FileNotFoundError, OSError):
            raise Http404("the snapshot is gone") from None
        return HttpResponse(jpeg, content_type="image/jpeg")
