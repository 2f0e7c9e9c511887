"""The process's stop-flag poller on the real Redis: one thread and one MGET for every
(scenario, epoch) the process runs; a flag for an older epoch stops nothing; Redis away is
logged and retried, not fatal."""

from __future__ import annotations

import logging
import threading
import uuid
from contextlib import ExitStack

import pytest
from pytest_django import Settings

from misis import keys
from misis.redis_client import get_redis
from runner.stop_flags import STOP_FLAGS, StopFlags
from scenarios.control import signal_stop, stops_requested
from scenarios.preview import mark_watched
from tests.helpers import wait_for


def sid() -> str:
    return str(uuid.uuid4())


def test_a_poll_sets_the_flag_of_each_stopped_pair_and_of_no_other() -> None:
    flags = StopFlags()
    a, b, c = sid(), sid(), sid()
    with (
        flags.watching(a, 2) as stop_a,
        flags.watching(b, 1) as stop_b,
        flags.watching(c, 1) as stop_c,
    ):
        signal_stop(a, 1)  # the stop of an older epoch of a: not this runner's
        signal_stop(b, 1)
        flags.poll()
        assert (stop_a.is_set(), stop_b.is_set(), stop_c.is_set()) == (False, True, False)
        signal_stop(a, 2)
        flags.poll()
        assert stop_a.is_set() and not stop_c.is_set()


def test_a_pair_is_no_longer_read_once_its_block_ends() -> None:
    flags = StopFlags()
    s = sid()
    with flags.watching(s, 1) as stop:
        pass
    signal_stop(s, 1)
    flags.poll()
    assert not stop.is_set()


def test_stops_requested_answers_each_pair_in_order() -> None:
    a, b = sid(), sid()
    signal_stop(b, 3)
    assert stops_requested([(a, 1), (b, 3), (b, 4), (b, 2)]) == [False, True, False, True]
    assert stops_requested([]) == []


def test_one_thread_for_every_scenario_of_the_process_and_a_stop_seen_within_a_poll() -> None:
    ids = [sid() for _ in range(50)]
    with STOP_FLAGS.watching(sid(), 1):  # the process's poller runs from here on
        before = set(threading.enumerate())
        with ExitStack() as stack:
            flags = [stack.enter_context(STOP_FLAGS.watching(s, 1)) for s in ids]
            assert set(threading.enumerate()) - before == set()
            signal_stop(ids[17], 1)
            wait_for(flags[17].is_set, timeout=2.0)
            assert [f.is_set() for f in flags].count(True) == 1


def test_redis_unreachable_is_logged_and_retried(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    s = sid()
    signal_stop(s, 1)
    reachable = settings.REDIS_URL
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    flags = StopFlags(interval=0.01)
    with (
        caplog.at_level(logging.WARNING, logger="runner.stop_flags"),
        flags.watching(s, 1) as stop,
    ):
        wait_for(lambda: "stop flags of 1 scenarios unreadable" in caplog.text)
        assert not stop.is_set()
        settings.REDIS_URL = reachable
        wait_for(stop.is_set, timeout=5.0)


def test_a_poll_reads_whether_each_scenarios_preview_is_watched() -> None:
    """The loops' preview writers ask the poller (runner/loop.py), not Redis: one MGET a poll
    for the process instead of a round trip a second for each scenario."""
    flags = StopFlags()
    a, b = sid(), sid()
    with flags.watching(a, 1), flags.watching(b, 1):
        mark_watched(b)
        flags.poll()
        assert (flags.previewed(a), flags.previewed(b)) == (False, True)
        get_redis().delete(keys.preview_watched(b))  # as its TTL would
        flags.poll()
        assert not flags.previewed(b)
    mark_watched(a)
    flags.poll()
    assert not flags.previewed(a)  # no longer run here: no longer read
