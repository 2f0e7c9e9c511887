"""Domain errors to HTTP codes, in one place."""

from __future__ import annotations

from typing import Any

from django_fsm import TransitionNotAllowed
from rest_framework import status
from rest_framework.exceptions import UnsupportedMediaType
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_handler

from scenarios.services import QuotaExceeded, TransitionRefused
from videos.services import VideoRejected
from videos.storage import ObjectStorageError


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, TransitionRefused):
        return Response(
            {"detail": f"command not allowed from status {exc.status}", "status": exc.status},
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, TransitionNotAllowed):
        current = getattr(exc, "object", None)
        current_status = getattr(current, "status", None)
        return Response(
            {"detail": "command not allowed from the current status", "status": current_status},
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, QuotaExceeded):
        return Response(
            {"detail": str(exc), "quota": exc.quota}, status=status.HTTP_429_TOO_MANY_REQUESTS
        )
    if isinstance(exc, VideoRejected):
        return Response({exc.field: [exc.message]}, status=exc.status)
    if isinstance(exc, ObjectStorageError):
        return Response({"detail": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
    if isinstance(exc, UnsupportedMediaType):
        view = context.get("view")
        if view is not None and MultiPartParser in getattr(view, "parser_classes", ()):
            return Response(
                {"file": ["send the file as multipart/form-data, in a field named file"]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        # The contract: a body that is not JSON is a 400.
        return Response({"detail": "the body must be JSON"}, status=status.HTTP_400_BAD_REQUEST)
    return drf_handler(exc, context)
