"""Static files (admin, Swagger UI) are served by the app itself, no web server needed."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client
from pytest_django import Settings

from tests.helpers import streamed_body


@pytest.mark.django_db
def test_collected_static_files_are_served(tmp_path: Path, settings: Settings) -> None:
    settings.STATIC_ROOT = tmp_path
    call_command("collectstatic", "--no-input", verbosity=0)
    assert any("WhiteNoise" in m for m in settings.MIDDLEWARE)
    # WhiteNoise indexes STATIC_ROOT when the middleware is built: a fresh client builds it.
    resp = Client().get("/static/admin/css/base.css")
    assert resp.status_code == 200
    assert b"body" in streamed_body(resp)
    docs = Client().get("/api/docs/").content.decode()
    assert "swagger-ui" in docs and "cdn.jsdelivr" not in docs
