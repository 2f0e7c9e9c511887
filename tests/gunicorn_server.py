"""A real gunicorn serving the API, started as run.sh and the API image start it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from testbed.processes import free_port

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "python:misis.gunicorn_conf"


@contextmanager
def gunicorn(log: Path, **env: str) -> Iterator[str]:
    """Yields the base URL; stdout and stderr (the access log among them) go to ``log``."""
    port = free_port()
    environ = {**os.environ, "DJANGO_SETTINGS_MODULE": "misis.settings.test", **env}
    cmd = [sys.executable, "-m", "gunicorn", "misis.wsgi", "-c", CONFIG]
    cmd += ["-b", f"127.0.0.1:{port}", "-w", "1", "-k", "gthread", "--threads", "2"]
    with log.open("w") as out:
        server = subprocess.Popen(cmd, cwd=ROOT, env=environ, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/docs/?ready=1", timeout=2).close()
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(20)
