"""The admin site, with its login form throttled (MISIS_THROTTLE_LOGIN)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from misis.throttling import login_throttled


class MisisAdminSite(admin.AdminSite):
    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        refused = login_throttled(request, "admin") if request.method == "POST" else None
        return refused or super().login(request, extra_context)
