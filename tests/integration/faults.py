"""Faults to inject: restarting the shared services the way this machine starts them."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis
from django.conf import settings

REDIS_START = [
    "redis-server",
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "-::1",
    "--port",
    "6379",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    "/var/lib/redis",
    "--logfile",
    "/var/log/redis/ci.log",
]


def _redis_up() -> bool:
    try:
        return bool(redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def restart_redis() -> float:
    """Stop Redis without saving (every key is lost, as on a real crash), start it again."""
    t0 = time.monotonic()
    subprocess.run(["redis-cli", "shutdown", "nosave"], capture_output=True, timeout=10)
    for _ in range(50):
        if not _redis_up():
            break
        time.sleep(0.1)
    Path("/var/lib/redis").mkdir(parents=True, exist_ok=True)
    Path("/var/log/redis").mkdir(parents=True, exist_ok=True)
    subprocess.run(REDIS_START, check=True, capture_output=True, timeout=10)
    for _ in range(100):
        if _redis_up():
            return time.monotonic() - t0
        time.sleep(0.1)
    raise RuntimeError("Redis did not come back")


def restart_postgres() -> float:
    """Restart the PostgreSQL cluster: every open connection of every process breaks."""
    t0 = time.monotonic()
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    for _ in range(100):
        if subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"]).returncode == 0:
            return time.monotonic() - t0
        time.sleep(0.1)
    raise RuntimeError("PostgreSQL did not come back")
