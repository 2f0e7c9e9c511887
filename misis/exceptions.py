"""Domain errors to HTTP codes, in one place."""

from __future__ import annotations

from typing import Any

from django_fsm import TransitionNotAllowed
from rest_framework import status
from rest_framework.exceptions import UnsupportedMediaType
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_handler


class ApiError(Exception):
    """A domain error the API answers with ``status_code`` and ``body()``.

    The apps' errors subclass it, so this handler, at the bottom of the layers, names none of
    them (scenarios' 409 and 429, uploads' 400 and 413, the object store's 503).
    """

    status_code = 400

    def body(self) -> dict[str, Any]:
        return {"detail": str(self)}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApiError):
        return Response(exc.body(), status=exc.status_code)
    if isinstance(exc, TransitionNotAllowed):
        current = getattr(exc, "object", None)
        current_status = getattr(current, "status", None)
        return Response(
            {"detail": "command not allowed from the current status", "status": current_status},
            status=status.HTTP_409_CONFLICT,
        )
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
