"""The admin site, with its login form throttled (MISIS_THROTTLE_LOGIN)."""

from __future__ import annotations

import logging
import math
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from misis.throttling import client_address, login_attempt_wait

logger = logging.getLogger(__name__)


class MisisAdminSite(admin.AdminSite):
    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        if request.method == "POST":
            wait = login_attempt_wait(request)
            if wait is not None:
                logger.warning("admin login throttled for %s", client_address(request))
                response = HttpResponse(
                    "Too many login attempts; try again later.\n",
                    status=429,
                    content_type="text/plain; charset=utf-8",
                )
                response["Retry-After"] = str(max(1, math.ceil(wait)))
                return response
        return super().login(request, extra_context)
