"""GET /health/: no token; 200 when PostgreSQL and Redis answer, 503 otherwise."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import connection
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from misis.redis_client import get_redis
from misis.workers import QUEUES, live_workers

logger = logging.getLogger(__name__)


def _inference(workers: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    infos = list(workers.get("inference", {}).values())
    if infos:
        info = infos[0]
        out = {
            "backend": info.get("backend"),
            "model": info.get("model"),
            "runtime": info.get("runtime"),
        }
        if info.get("fallback_reason"):
            out["fallback_reason"] = info["fallback_reason"]
        return out
    # No inference worker is up: say what one would load.
    backend = settings.MISIS_INFERENCE_BACKEND
    return {
        "backend": backend,
        "model": settings.MISIS_MODEL or ("mock" if backend == "mock" else "default"),
        "runtime": "mock" if backend == "mock" else settings.MISIS_RUNTIME,
    }


# The body of both answers, for the OpenAPI schema only.
_HEALTH_BODY = inline_serializer(
    name="Health",
    fields={
        "database": serializers.ChoiceField(choices=["ok", "error"]),
        "redis": serializers.ChoiceField(choices=["ok", "error"]),
        "workers": inline_serializer(
            name="HealthWorkers",
            fields={
                q: serializers.IntegerField(
                    min_value=0, help_text=f"Live workers on the {q} queue."
                )
                for q in ("runner", "inference", "orchestrator")
            },
        ),
        "inference": inline_serializer(
            name="HealthInference",
            fields={
                "backend": serializers.CharField(help_text="The detector: yolo or mock."),
                "model": serializers.CharField(help_text="Path or name of the weights."),
                "runtime": serializers.CharField(
                    help_text=(
                        "What runs the weights: openvino, onnx, torch or tensorrt (mock for "
                        "mock); with no inference worker up, the configured MISIS_RUNTIME."
                    )
                ),
                "fallback_reason": serializers.CharField(
                    required=False, help_text="Why the worker fell back to another backend."
                ),
            },
        ),
    },
)


class HealthApi(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    throttle_classes: list[type] = []  # load balancers poll it

    @extend_schema(
        operation_id="health",
        summary="Health of the stack",
        description="No token needed. 200 when PostgreSQL and Redis answer, 503 otherwise.",
        tags=["health"],
        responses={
            200: OpenApiResponse(_HEALTH_BODY, description="PostgreSQL and Redis answer."),
            503: OpenApiResponse(_HEALTH_BODY, description="PostgreSQL or Redis is down."),
        },
    )
    def get(self, request: Request) -> Response:
        body: dict[str, Any] = {}
        healthy = True
        try:
            with connection.cursor() as cur:
                cur.execute("SELECT 1")
            body["database"] = "ok"
        except Exception as exc:
            logger.warning("health: database down: %s", exc)
            body["database"] = "error"
            healthy = False
        workers: dict[str, dict[str, dict[str, Any]]] = {}
        try:
            get_redis().ping()
            body["redis"] = "ok"
            workers = live_workers()
        except Exception as exc:
            logger.warning("health: redis down: %s", exc)
            body["redis"] = "error"
            healthy = False
        body["workers"] = {q: len(workers.get(q, {})) for q in QUEUES}
        body["inference"] = _inference(workers)
        return Response(body, status=200 if healthy else 503)
