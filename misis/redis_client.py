"""One Redis connection pool per process, from REDIS_URL, bounded by MISIS_REDIS_MAX_CONNECTIONS
(a thread past the bound waits for a connection rather than failing)."""

from __future__ import annotations

import os
import threading

import redis
from django.conf import settings

_lock = threading.Lock()
_clients: dict[tuple[int, str], redis.Redis] = {}


def get_redis() -> redis.Redis:
    """The process's client; a forked child gets a fresh pool rather than its parent's sockets."""
    key = (os.getpid(), settings.REDIS_URL)
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                pool = redis.BlockingConnectionPool.from_url(
                    settings.REDIS_URL,
                    max_connections=settings.MISIS_REDIS_MAX_CONNECTIONS,
                    timeout=settings.MISIS_REDIS_POOL_TIMEOUT,
                    socket_timeout=10,
                    socket_connect_timeout=5,
                    health_check_interval=30,
                )
                client = redis.Redis(connection_pool=pool)
                _clients[key] = client
    return client


def as_bytes(reply: bytes | str) -> bytes:
    """A reply as bytes.

    Our clients leave replies undecoded (no ``decode_responses``), so a reply is bytes; redis-py
    types every reply ``bytes | str`` whatever the client, and this narrows it honestly.
    """
    return reply if isinstance(reply, bytes) else reply.encode()


def as_str(reply: bytes | str) -> str:
    """A reply as text (UTF-8): keys and values we wrote ourselves."""
    return reply.decode() if isinstance(reply, bytes) else reply
