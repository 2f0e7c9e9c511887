"""The runner's frame loop without Celery: ``run_scenario`` called directly (or in a thread),
on the real PostgreSQL and Redis, with the mock detector answering from an in-process batcher
on the test Redis database. Every test checks what the loop leaves behind: prediction rows,
the scenario's row, the lease."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection
from pytest_django import Settings

from inference.backends.mock import MockBackend
from inference.batcher import Batcher
from inference.transport import REQUESTS_KEY
from misis.lease import lease_holder_epoch
from misis.redis_client import get_redis
from runner.loop import WORKER_STOPPING, run_scenario
from runner.sampling import Sampler
from scenarios.control import signal_stop
from scenarios.models import OutboxKind, OutboxMessage, Prediction, Scenario, Status, StopReason
from tests.factories import make_scenario
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

FPS = 25  # the sample videos' frame rate
SHORT = 40  # frames in short.mp4


def _in_thread(target: Callable[[], Any]) -> threading.Thread:
    def body() -> None:
        try:
            target()
        finally:
            connection.close()  # the thread's own connection, or the test database stays busy

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def batcher() -> Iterator[Callable[..., Batcher]]:
    """Start an inference batcher thread on the mock backend; stopped after the test."""
    started: list[tuple[Batcher, threading.Thread]] = []

    def start(delay_ms: float = 0.0, max_batch: int = 4) -> Batcher:
        b = Batcher(MockBackend(delay_ms=delay_ms), max_batch=max_batch, max_wait_ms=2)
        started.append((b, _in_thread(b.run)))
        return b

    yield start
    for b, thread in started:
        b.stop_event.set()
        thread.join(timeout=5)


_runners: list[threading.Thread] = []


@pytest.fixture(autouse=True)
def _worker_running() -> Iterator[None]:
    """Each test starts with the worker up and ends with none of its runners left running."""
    WORKER_STOPPING.clear()
    yield
    WORKER_STOPPING.set()  # a runner a failed test left behind hands over and returns
    while _runners:
        _runners.pop().join(timeout=10)
    WORKER_STOPPING.clear()


def scenario(source: str = "short.mp4", **params: Any) -> Scenario:
    """A scenario as the runner's task finds it: started, epoch sent, waiting for its runner."""
    s = make_scenario(Status.IN_STARTUP_PROCESSING, source=source, params=params)
    s.refresh_from_db()
    return s


def start(s: Scenario) -> threading.Thread:
    epoch = s.epoch
    runner = _in_thread(lambda: run_scenario(str(s.pk), epoch))
    _runners.append(runner)
    return runner


def frames_of(s: Scenario) -> list[int]:
    return list(
        Prediction.objects.filter(scenario=s)
        .order_by("frame_index")
        .values_list("frame_index", flat=True)
    )


def processed(s: Scenario) -> int:
    return Scenario.objects.get(pk=s.pk).frames_processed


# --- sampling ---------------------------------------------------------------------------


def test_sampler_follows_source_time_not_frame_count() -> None:
    sampler = Sampler(target_fps=5)  # one frame per 0.2 s of source
    # Jittery timestamps (a variable-rate source): the grid is by pts, not every Nth frame.
    pts = [0.0, 0.07, 0.13, 0.19, 0.21, 0.33, 0.41, 0.55, 0.6, 0.95, 1.0]
    assert [p for p in pts if sampler.take(p)] == [0.0, 0.21, 0.41, 0.6, 0.95, 1.0]
    assert all(Sampler(None).take(p) for p in pts)


def test_target_fps_analyses_the_frames_at_that_rate_of_source_time(batcher: Any) -> None:
    batcher()
    s = scenario(target_fps=5)  # 25 fps file: every fifth frame, by pts
    run_scenario(str(s.pk), s.epoch)

    s.refresh_from_db()
    assert (s.status, s.stop_reason) == (Status.INACTIVE, StopReason.END_OF_STREAM)
    assert frames_of(s) == list(range(0, SHORT, 5))
    pts = list(Prediction.objects.filter(scenario=s).order_by("frame_index").values_list("pts"))
    assert [round(p, 3) for (p,) in pts] == [round(i / FPS, 3) for i in range(0, SHORT, 5)]
    assert s.next_frame == SHORT and s.frames_processed == SHORT // 5
    assert lease_holder_epoch(s.pk) is None


# --- the in-flight bound ----------------------------------------------------------------


def test_never_more_frames_at_the_detector_than_max_in_flight(settings: Settings) -> None:
    settings.MISIS_MAX_IN_FLIGHT = 3
    settings.MISIS_HEARTBEAT_INTERVAL = 0.1
    redis = get_redis()
    s = scenario()
    runner = start(s)
    # No detector yet: the runner sends three frames and waits, with no fourth.
    wait_for(lambda: redis.llen(REQUESTS_KEY) == 3)
    beat = Scenario.objects.get(pk=s.pk).heartbeat_at
    peak = 0
    for _ in range(40):
        peak = max(peak, redis.llen(REQUESTS_KEY))
        time.sleep(0.01)
    assert peak == 3
    # Its heartbeats go on, and keep the frontier at the oldest unanswered frame.
    waiting = Scenario.objects.get(pk=s.pk)
    assert beat is not None and waiting.heartbeat_at is not None
    assert waiting.heartbeat_at > beat
    assert (waiting.frames_processed, waiting.next_frame) == (0, 0)

    # Answer one frame at a time: each answer lets exactly one more frame in.
    detector = Batcher(MockBackend(), max_batch=1, max_wait_ms=0)
    answered = 0
    while runner.is_alive() and answered < SHORT:
        answered += detector.step()
        for _ in range(3):
            peak = max(peak, redis.llen(REQUESTS_KEY))
            time.sleep(0.002)
    runner.join(timeout=15)
    assert not runner.is_alive()
    assert peak == 3
    assert answered == SHORT
    s.refresh_from_db()
    assert frames_of(s) == list(range(SHORT))
    assert (s.status, s.stop_reason) == (Status.INACTIVE, StopReason.END_OF_STREAM)


# --- publishing -------------------------------------------------------------------------


def _watch(s: Scenario, runner: threading.Thread) -> list[tuple[int, int]]:
    """(rows, next_frame) as seen from outside while the runner runs, rows read first."""
    seen: list[tuple[int, int]] = []
    while runner.is_alive():
        rows = Prediction.objects.filter(scenario=s).count()
        seen.append((rows, Scenario.objects.get(pk=s.pk).next_frame))
        time.sleep(0.003)
    return seen


def test_rows_are_published_in_batches_once_each_behind_the_frontier(
    settings: Settings, batcher: Any
) -> None:
    settings.MISIS_PUBLISH_BATCH = 5
    settings.MISIS_PUBLISH_INTERVAL = settings.MISIS_FILE_PUBLISH_INTERVAL = 60.0
    settings.MISIS_HEARTBEAT_INTERVAL = 60.0  # no heartbeat publish either: batches only
    batcher(delay_ms=15, max_batch=1)  # ~40 answers over more than half a second
    s = scenario()
    seen = _watch(s, start(s))

    counts = sorted({rows for rows, _ in seen})
    assert all(rows % 5 == 0 for rows in counts), counts  # whole batches, never part of one
    assert len([c for c in counts if 0 < c < SHORT]) >= 3, counts  # several, as they fill
    # The frontier only moves forward, and every published frame lies below it.
    fronts = [front for _, front in seen]
    assert fronts == sorted(fronts)
    assert all(front >= rows for rows, front in seen)
    s.refresh_from_db()
    assert frames_of(s) == list(range(SHORT))  # each frame once
    assert s.frames_processed == SHORT and s.next_frame == SHORT


def test_rows_older_than_the_interval_are_published_before_a_batch_fills(
    settings: Settings, batcher: Any
) -> None:
    settings.MISIS_PUBLISH_BATCH = 1000
    settings.MISIS_PUBLISH_INTERVAL = 60.0  # a live source's: not this file's
    settings.MISIS_FILE_PUBLISH_INTERVAL = 0.15
    settings.MISIS_HEARTBEAT_INTERVAL = 60.0
    batcher(delay_ms=25, max_batch=1)  # ~1 s of answers
    s = scenario()
    seen = _watch(s, start(s))

    partial = {rows for rows, _ in seen if 0 < rows < SHORT}
    assert len(partial) >= 2, sorted(partial)
    s.refresh_from_db()
    assert frames_of(s) == list(range(SHORT))
    assert s.next_frame == SHORT


# --- stop and hand-over -----------------------------------------------------------------


@pytest.fixture
def only_final_publish(settings: Settings) -> None:
    """No batch, interval or heartbeat publish within a test: rows seen come from the last one."""
    settings.MISIS_PUBLISH_BATCH = 10_000
    settings.MISIS_PUBLISH_INTERVAL = settings.MISIS_FILE_PUBLISH_INTERVAL = 60.0
    settings.MISIS_HEARTBEAT_INTERVAL = 60.0


def test_stop_flag_ends_the_loop_as_requested_and_nothing_is_published_after(
    batcher: Any, only_final_publish: None
) -> None:
    detector = batcher()
    s = scenario("loop.mp4", loop=True)  # a looping file never ends by itself
    runner = start(s)
    wait_for(lambda: detector.frames >= 5)
    signal_stop(s.pk, s.epoch)  # only the flag: the status is still active
    runner.join(timeout=10)
    assert not runner.is_alive()

    s.refresh_from_db()
    assert (s.status, s.stop_reason, s.runner) == (Status.INACTIVE, StopReason.REQUESTED, None)
    assert lease_holder_epoch(s.pk) is None
    # What was answered before the stop is published by the stop, behind the frontier.
    published = frames_of(s)
    assert len(published) == s.frames_processed >= 4
    assert published == sorted(set(published)) and published[-1] < s.next_frame
    time.sleep(0.5)
    assert frames_of(s) == published  # no frame after the stop


def test_a_live_loop_waiting_for_fresher_frames_publishes_each_analysed_frame_once(
    batcher: Any, settings: Settings
) -> None:
    """runner/freshness.py: at this cost the loop waits up to half a frame interval whenever
    the frame waiting is about to be replaced, publishing first; what it analyses is still
    published once, in order, behind the frontier, and the frames replaced are counted."""
    settings.MISIS_FRESH_FRAME_COST = 1.0
    detector = batcher(delay_ms=60)  # slower than the 25-fps loop: frames get replaced
    s = scenario("loop.mp4", loop=True)
    runner = start(s)
    wait_for(lambda: detector.frames >= 12, timeout=30)
    signal_stop(s.pk, s.epoch)
    runner.join(timeout=10)
    assert not runner.is_alive()

    s.refresh_from_db()
    assert (s.status, s.stop_reason) == (Status.INACTIVE, StopReason.REQUESTED)
    published = frames_of(s)
    assert len(published) == s.frames_processed >= 11
    assert published == sorted(set(published)) and published[-1] < s.next_frame
    assert s.frames_dropped > 0


def test_worker_shutdown_hands_the_scenario_to_another_runner(
    batcher: Any, only_final_publish: None
) -> None:
    detector = batcher()
    s = scenario("loop.mp4", loop=True)
    first_epoch = s.epoch
    runner = start(s)
    wait_for(lambda: detector.frames >= 5)
    WORKER_STOPPING.set()
    runner.join(timeout=10)
    assert not runner.is_alive()

    s.refresh_from_db()
    # Back to running under a new epoch, the old runner's lease released. A hand-over is no
    # restart: neither ``restarts`` nor ``failed_restarts`` grows (no backoff, no give-up).
    assert s.status == Status.ACTIVE and s.runner is None
    assert s.epoch == first_epoch + 1
    assert (s.restarts, s.failed_restarts) == (0, 0)
    assert lease_holder_epoch(s.pk) is None
    assert OutboxMessage.objects.filter(
        scenario=s, kind=OutboxKind.START, epoch=s.epoch, dispatched_at__isnull=False
    ).exists()
    # The old runner published what it had before handing over, behind the frontier.
    handed = frames_of(s)
    assert len(handed) >= 4 and handed[-1] < s.next_frame

    # The next runner resumes at the frontier: nothing published twice.
    WORKER_STOPPING.clear()
    answered = detector.frames
    successor = start(s)
    wait_for(lambda: detector.frames >= answered + 5)
    signal_stop(s.pk, s.epoch)
    successor.join(timeout=10)
    assert not successor.is_alive()
    newer = list(
        Prediction.objects.filter(scenario=s, epoch=s.epoch).values_list("frame_index", flat=True)
    )
    assert newer and min(newer) >= s.next_frame
    s.refresh_from_db()
    assert (s.status, s.stop_reason) == (Status.INACTIVE, StopReason.REQUESTED)
    assert frames_of(s) == sorted(set(handed + newer))
    assert len(handed) + len(newer) == s.frames_processed
