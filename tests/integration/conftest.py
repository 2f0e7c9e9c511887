from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.stack import Stack


@pytest.fixture(scope="module")
def stack(
    django_db_setup: None,
    django_db_blocker: pytest.FixtureRequest,
    video_root: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("stack-logs")
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        s = Stack(logs, video_root, MISIS_MOCK_DELAY_MS="10")
    s.start_all()
    try:
        yield s
    finally:
        s.stop_all()
        print(f"stack logs in {logs}")


@pytest.fixture
def live(stack: Stack, transactional_db: None) -> Stack:
    """The stack, with anything a previous test killed started again."""
    stack.ensure_running()
    return stack
