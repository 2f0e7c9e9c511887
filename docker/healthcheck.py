"""Container health checks (the images' HEALTHCHECK). Exit 0: healthy, 1: unhealthy.

    healthcheck.py http     GET /health/ on this container's API (200: PostgreSQL and Redis answer)
    healthcheck.py worker   the Celery worker of this container answers a ping
    healthcheck.py beat     Redis (the broker beat sends to) answers

The worker is found by node name: ``$MISIS_WORKER_NAME@<hostname>`` when MISIS_WORKER_NAME is
set (the compose file sets it to the ``-n`` prefix of each worker), else any node on this host.
Shell equivalent: ``celery -A misis inspect ping -d runner@$HOSTNAME``.
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.request
from pathlib import Path

TIMEOUT = 8.0


def check_http() -> bool:
    port = os.environ.get("MISIS_API_PORT", "8000")
    url = os.environ.get("MISIS_HEALTH_URL", f"http://127.0.0.1:{port}/health/")
    # Production settings refuse Host headers outside DJANGO_ALLOWED_HOSTS: send the first one.
    hosts = [h.strip() for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(",") if h.strip()]
    request = urllib.request.Request(url)
    if hosts:
        request.add_header("Host", hosts[0].lstrip("."))
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return bool(response.status == 200)
    except Exception as exc:  # HTTPError (503: database or Redis down), URLError, timeout
        print(f"health: {url}: {exc}", file=sys.stderr)
        return False


def check_worker() -> bool:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "misis.settings.production")
    from misis.celery import app

    host = socket.gethostname()
    name = os.environ.get("MISIS_WORKER_NAME", "")
    destination = [f"{name}@{host}"] if name else None
    replies = app.control.ping(destination=destination, timeout=TIMEOUT / 2)
    nodes = [node for reply in replies or [] for node in reply]
    alive = any(node.endswith(f"@{host}") for node in nodes)
    if not alive:
        print(f"health: no Celery worker on {host} answered a ping", file=sys.stderr)
    return alive


def check_beat() -> bool:
    import redis

    url = os.environ.get("CELERY_BROKER_URL") or os.environ.get(
        "REDIS_URL", "redis://127.0.0.1:6379/0"
    )
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=TIMEOUT).ping())
    except Exception as exc:
        print(f"health: broker {url.split('@')[-1]}: {exc}", file=sys.stderr)
        return False


CHECKS = {"http": check_http, "worker": check_worker, "beat": check_beat}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in CHECKS:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(CHECKS)}}}")
    sys.exit(0 if CHECKS[sys.argv[1]]() else 1)
