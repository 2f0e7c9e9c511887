"""The process's Redis pool on the real Redis: threads past MISIS_REDIS_MAX_CONNECTIONS wait for
a connection to come back instead of failing (redis-py's default pool raises "Too many
connections" at 100, which crashed runner threads at 500 scenarios); one that waits too long
gets a clear error."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from django.test import override_settings

from misis import redis_client


@pytest.fixture
def fresh_pool() -> Iterator[None]:
    redis_client._clients.clear()
    yield
    redis_client._clients.clear()


@pytest.mark.usefixtures("fresh_pool")
def test_threads_past_the_bound_wait_for_a_connection() -> None:
    errors: list[BaseException] = []
    answered: list[object] = []
    with override_settings(MISIS_REDIS_MAX_CONNECTIONS=3, MISIS_REDIS_POOL_TIMEOUT=10.0):
        client = redis_client.get_redis()

        def blocking_read(i: int) -> None:
            try:  # each holds its connection for 0.2 s, as a runner waiting for a detection
                answered.append(client.blpop([f"misis:test-pool-empty:{i}"], timeout=0.2))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=blocking_read, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        pool = client.connection_pool
        assert errors == []
        assert answered == [None] * 12  # every read ran (and found its list empty)
        assert pool.max_connections == 3
        assert len(pool._connections) <= 3  # type: ignore[attr-defined]


@pytest.mark.usefixtures("fresh_pool")
def test_a_thread_that_cannot_get_a_connection_in_time_gets_a_clear_error() -> None:
    import redis

    with override_settings(MISIS_REDIS_MAX_CONNECTIONS=1, MISIS_REDIS_POOL_TIMEOUT=0.2):
        client = redis_client.get_redis()
        held = client.connection_pool.get_connection()
        try:
            with pytest.raises(redis.ConnectionError, match="No connection available"):
                client.ping()
        finally:
            client.connection_pool.release(held)
        assert client.ping() is True
