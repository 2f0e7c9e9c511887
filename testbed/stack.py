"""Real worker processes for the integration tests and the benches: beat, orchestrator, runners,
inference.

Each process is a real ``celery worker`` (or ``beat``) started from the project's venv against
the test database and the test Redis database, logging to its own file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]
CELERY = str(Path(sys.executable).parent / "celery")


def wait_for(
    check: Callable[[], Any], timeout: float, interval: float = 0.1, what: str = ""
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")
        time.sleep(interval)


class Stack:
    def __init__(
        self, log_dir: Path, video_root: Path, api_port: int | None = None, **env: str
    ) -> None:
        self.log_dir = log_dir
        db = connection.settings_dict
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "misis.settings.test",
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "REDIS_URL": settings.REDIS_URL,
            "MISIS_VIDEO_ROOT": str(video_root),
            "MISIS_INFERENCE_BACKEND": "mock",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        # Where each process's log stood when it was last started: "ready" counts after it.
        self.log_from: dict[str, int] = {}
        self.commands: dict[str, list[str]] = {
            "beat": [
                CELERY,
                "-A",
                "misis",
                "beat",
                "-l",
                "INFO",
                "-s",
                str(log_dir / "celerybeat-schedule"),
            ],
            "orchestrator": self._worker("orchestrator", "orchestrator", "threads", 4),
            "runner1": self._worker("runner1", "runner", "threads", 16),
            "runner2": self._worker("runner2", "runner", "threads", 16),
            "inference": self._worker("inference", "inference", "solo", 1),
        }
        if api_port:
            gunicorn = str(Path(sys.executable).parent / "gunicorn")
            self.commands["api"] = [
                gunicorn,
                "misis.wsgi",
                "-b",
                f"127.0.0.1:{api_port}",
                "-w",
                "2",
                "-k",
                "gthread",
                "--threads",
                "8",
            ]

    @staticmethod
    def _worker(name: str, queue: str, pool: str, concurrency: int) -> list[str]:
        return [
            CELERY,
            "-A",
            "misis",
            "worker",
            "-l",
            "INFO",
            "-Q",
            queue,
            "-n",
            f"{name}@%h",
            "-P",
            pool,
            "-c",
            str(concurrency),
            "--prefetch-multiplier",
            "1",
            "--without-gossip",
            "--without-mingle",
        ]

    def start(self, name: str) -> None:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        self.log_from[name] = len(self.log(name))
        self.procs[name] = subprocess.Popen(
            self.commands[name], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )

    def start_all(self) -> None:
        for name in self.commands:
            self.start(name)
        self.wait_ready(list(self.commands))

    def wait_ready(self, names: list[str], timeout: float = 60) -> None:
        for name in names:
            if name in ("beat", "api"):
                continue
            wait_for(partial(self._logged, name, b" ready."), timeout, what=f"{name} ready")

    def restart(self, names: list[str], **env: str) -> None:
        """Stop ``names`` (a warm shutdown), set ``env`` for them and every later start, and
        start them again."""
        self._stop(names, timeout=30)
        self.env.update(env)
        for name in names:
            self.start(name)
        self.wait_ready(names)

    def ensure_running(self) -> None:
        """Start again whatever a previous test killed."""
        dead = [n for n, p in self.procs.items() if p.poll() is not None]
        for name in dead:
            self.start(name)
        self.wait_ready(dead)

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def name_of(self, runner: str) -> str:
        pid = int(runner.rsplit(":", 1)[1])
        return next(n for n, p in self.procs.items() if p.pid == pid)

    def _logged(self, name: str, text: bytes) -> bool:
        """``text`` in what the process logged since it was last started."""
        return text in self.log(name)[self.log_from.get(name, 0) :]

    def log(self, name: str) -> bytes:
        path = self.log_dir / f"{name}.log"
        return path.read_bytes() if path.exists() else b""

    def signal(self, name: str, sig: int) -> None:
        os.kill(self.procs[name].pid, sig)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Every process of the stack, children too, stopped (SIGSTOP) meanwhile: what is
        measured in between has the machine to itself but for PostgreSQL and Redis."""
        import psutil

        procs: list[psutil.Process] = []
        for proc in self.procs.values():
            if proc.poll() is None:
                parent = psutil.Process(proc.pid)
                procs += [parent, *parent.children(recursive=True)]
        for p in procs:
            p.suspend()
        try:
            yield
        finally:
            for p in procs:
                try:
                    p.resume()
                except psutil.NoSuchProcess:
                    continue

    def stop_all(self) -> None:
        self._stop(list(self.procs))

    def _stop(self, names: list[str], timeout: float = 15) -> None:
        """SIGTERM (a warm shutdown, resumed first if paused), then SIGKILL what is left after
        ``timeout`` seconds."""
        procs = [self.procs[name] for name in names]
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
