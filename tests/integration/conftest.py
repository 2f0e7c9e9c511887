from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.stack import Stack


def _stack(
    request: pytest.FixtureRequest, video_root: Path, tmp: pytest.TempPathFactory, **env: str
) -> Iterator[Stack]:
    blocker: Any = request.getfixturevalue("django_db_blocker")
    logs = tmp.mktemp("stack-logs")
    with blocker.unblock():
        s = Stack(logs, video_root, api_port=None, **env)
    try:
        s.start_all()  # inside: a start that times out still stops what it started
        yield s
    finally:
        s.stop_all()
        print(f"stack logs in {logs}")


@pytest.fixture(scope="module")
def stack(
    request: pytest.FixtureRequest,
    django_db_setup: None,
    video_root: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """Beat, orchestrator, two runners and a mock inference worker (10 ms a call)."""
    yield from _stack(
        request,
        video_root,
        tmp_path_factory,
        MISIS_MOCK_DELAY_MS="10",
        # A frame lost with a killed inference worker is sent again after this long.
        MISIS_INFERENCE_TIMEOUT="5",
        # The chaos test kills processes faster than the default give-up policy tolerates;
        # giving up is tested on its own (tests/scenarios/test_services.py).
        MISIS_MAX_RESTARTS="50",
    )


@pytest.fixture(scope="module")
def yolo_stack(
    request: pytest.FixtureRequest,
    django_db_setup: None,
    video_root: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """The same, with the real YOLO detector on the default offline weights."""
    yield from _stack(request, video_root, tmp_path_factory, MISIS_INFERENCE_BACKEND="yolo")


@pytest.fixture(scope="module")
def stream_stack(
    request: pytest.FixtureRequest,
    django_db_setup: None,
    video_root: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """The mock stack with short stream timeouts, for tests that kill and freeze servers."""
    env = {
        "MISIS_MOCK_DELAY_MS": "10",
        "MISIS_STREAM_OPEN_TIMEOUT": "3",
        "MISIS_STREAM_READ_TIMEOUT": "2",
        "MISIS_RECONNECT_BACKOFF_MAX": "1",
        "MISIS_OPEN_RETRIES": "2",
    }
    yield from _stack(request, video_root, tmp_path_factory, **env)


@pytest.fixture
def live(stack: Stack, transactional_db: None) -> Stack:
    """The stack, with anything a previous test killed started again."""
    stack.ensure_running()
    return stack
