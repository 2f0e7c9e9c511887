"""Shared fixtures. Everything runs against the real PostgreSQL (pytest-django's test database)
and the real Redis (the database named by REDIS_URL, db 15 by default, flushed per test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from pytest_django import Settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from misis.redis_client import get_redis
from runner.samples import write_people_video, write_sample_video

UserModel = get_user_model()


def offline(request: pytest.FixtureRequest) -> bool:
    """A test marked ``offline`` needs neither Redis nor the sample videos (it renders files)."""
    return request.node.get_closest_marker("offline") is not None


@pytest.fixture(autouse=True)
def redis_clean(request: pytest.FixtureRequest) -> Iterator[None]:
    """Forget leases, stop flags and queued messages of earlier tests.

    Not FLUSHDB: that would also drop kombu's exchange bindings under running workers.
    """
    if offline(request):
        yield
        return
    r = get_redis()
    assert r.connection_pool.connection_kwargs.get("db", 0) != 0, "tests never touch Redis db 0"
    keys = [*r.scan_iter(match="misis:*", count=1000), "runner", "orchestrator", "inference"]
    r.delete(*keys)
    yield


@pytest.fixture(scope="session")
def video_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A video root with small synthetic files, shared by unit and integration tests."""
    root = tmp_path_factory.mktemp("videos")
    write_sample_video(root / "short.mp4", frames=40)
    write_sample_video(root / "long.mp4", frames=1500, size=(160, 120))
    write_sample_video(root / "loop.mp4", frames=100)
    write_people_video(root / "people.mp4", frames=6)
    (root / "notes.txt").write_text("not a video")
    return root


@pytest.fixture(autouse=True)
def _video_root_setting(request: pytest.FixtureRequest) -> None:
    if offline(request):
        return
    settings: Settings = request.getfixturevalue("settings")
    settings.MISIS_VIDEO_ROOT = request.getfixturevalue("video_root")


@pytest.fixture
def user(db: None) -> User:
    return UserModel.objects.create_user(username="alice", password="x")


@pytest.fixture
def other_user(db: None) -> User:
    return UserModel.objects.create_user(username="bob", password="x")


@pytest.fixture
def staff_user(db: None) -> User:
    return UserModel.objects.create_user(username="ops", password="x", is_staff=True)


def client_for(user: User) -> APIClient:
    token, _ = Token.objects.get_or_create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def api(user: User) -> APIClient:
    return client_for(user)


@pytest.fixture
def other_api(other_user: User) -> APIClient:
    return client_for(other_user)


@pytest.fixture
def staff_api(staff_user: User) -> APIClient:
    return client_for(staff_user)


def queued(queue: str = "runner") -> int:
    """Celery messages waiting on a queue (the broker is the test Redis database)."""
    return int(get_redis().llen(queue))


from tests.media_servers.fixtures import *  # noqa: E402, F403
from tests.media_servers.internal_host import *  # noqa: E402, F403
from tests.media_servers.onvif_fixtures import *  # noqa: E402, F403
from tests.media_servers.s3_fixtures import *  # noqa: E402, F403
