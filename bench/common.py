"""What the benches share: their own database and Redis database, and a small HTTP client."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "misis.settings.test")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/misis_bench")
os.environ["REDIS_URL"] = "redis://127.0.0.1:6379/13"


def fresh_database(name: str = "misis_bench") -> None:
    """Drop and create the bench's database (DATABASE_URL's), set up Django and migrate it."""
    for sql in (f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}"):
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", sql], check=True)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def bench_token(username: str = "bench") -> str:
    """A user and its API token in the bench database."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    user = get_user_model().objects.create_user(username=username)
    return str(Token.objects.create(user=user).key)


def insert_predictions(scenario_id: object, rows: int) -> float:
    """``rows`` predictions for one scenario, written by PostgreSQL itself; returns seconds."""
    from django.db import connection

    t0 = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute(
            """
            INSERT INTO scenarios_prediction
                (scenario_id, frame_index, epoch, pts, captured_at, width, height,
                 inference_ms, boxes)
            SELECT %s, g, 1, g / 25.0, now(), 1280, 720, 40.0,
                   '[{"label": "person", "class_id": 0, "confidence": 0.9,
                      "x1": 10, "y1": 20, "x2": 110, "y2": 300}]'::jsonb
            FROM generate_series(0, %s - 1) AS g
            """,
            [str(scenario_id), rows],
        )
        cur.execute("ANALYZE scenarios_prediction")
    return time.perf_counter() - t0


def pct(values: list[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank) of ``values``; NaN when there is none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def start_stack(api: Api, *, video_frames: int) -> tuple[Path, Any]:
    """A work folder with a sample video (videos/loop.mp4) of ``video_frames`` frames, and the
    whole stack on it (testbed.stack.Stack, mock detector at 10 ms a frame) started, its API
    answering on ``api``'s port. Returns (the folder, the stack); the caller stops the stack."""
    from runner.samples import write_sample_video
    from testbed.stack import Stack

    work = Path(tempfile.mkdtemp(prefix="misis-bench-"))
    write_sample_video(work / "videos" / "loop.mp4", frames=video_frames)
    stack = Stack(work, work / "videos", api_port=api.port, MISIS_MOCK_DELAY_MS="10")
    stack.start_all()
    wait(api.health, 30)
    return work, stack


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
        self.port = port
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

    def poller(self, token: str) -> Poller:
        """GETs over one kept-alive connection, as a client polling many times a second would
        (a new connection a request, as ``call`` makes, adds 1-2 ms a poll on this VM)."""
        return Poller(self.port, token)

    def health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(self.base + "/health/", timeout=2) as resp:
                body: dict[str, Any] = json.loads(resp.read())
                return body
        except OSError:
            return None


class Poller:
    """GET requests over one HTTP/1.1 connection kept alive (reopened if the server closed it)."""

    def __init__(self, port: int, token: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Authorization": f"Token {token}"}

    def get(self, path: str) -> Any:
        for attempt in (1, 2):
            try:
                self.conn.request("GET", path, headers=self.headers)
                resp = self.conn.getresponse()
                body = resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()  # the server's keep-alive ran out: once more, on a new one
                if attempt == 2:
                    raise
                continue
            if resp.status != 200:
                raise RuntimeError(f"GET {path}: {resp.status} {body[:200]!r}")
            return json.loads(body)
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()
