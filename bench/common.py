"""What the benches share: their own database and Redis database, and a small HTTP client."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "misis.settings.test")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/misis_bench")
os.environ["REDIS_URL"] = "redis://127.0.0.1:6379/13"


def fresh_database() -> None:
    """Drop and create misis_bench, set up Django and migrate it."""
    for sql in ("DROP DATABASE IF EXISTS misis_bench", "CREATE DATABASE misis_bench"):
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", sql], check=True)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def wait(check: Any, timeout: float, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError("bench step timed out")


class Api:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def call(self, method: str, path: str, token: str, body: dict[str, Any] | None = None) -> Any:
        req = urllib.request.Request(
            self.base + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(self.base + "/health/", timeout=2) as resp:
                return json.loads(resp.read())
        except OSError:
            return None
