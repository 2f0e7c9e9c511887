"""A live scenario's wait for a fresher frame: how long it may wait (runner/freshness.py), the
feed's measure of its stream's frame interval and its wait for the successor of the frame
waiting (runner/feeds.py). The loop that waits: tests/runner/test_loop.py."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.feeds import LatestFrameFeed
from runner.freshness import Freshness
from runner.samples import write_sample_video
from runner.sources import VideoSource

SLOW_FPS = 5  # frames 0.2 s apart: room for the scheduling of a loaded test machine


def test_the_wait_is_held_to_its_share_of_the_detectors_turn() -> None:
    fresh = Freshness(cost=0.02)
    assert fresh.wait(0.04) == 0.0  # no round trip measured yet
    fresh.round_trip = 0.085
    # idle w^2 / (2 I) a turn = cost * T  =>  w = sqrt(2 I cost T): 11.7 ms at 25 fps.
    assert fresh.wait(0.04) == pytest.approx(math.sqrt(2 * 0.04 * 0.02 * 0.085))
    assert fresh.wait(0.04) ** 2 / (2 * 0.04) == pytest.approx(0.02 * 0.085)
    assert fresh.wait(None) == 0.0  # the stream's interval not known yet
    fresh.round_trip = 10.0  # a very slow detector: never more than half an interval
    assert fresh.wait(0.04) == pytest.approx(0.02)
    assert fresh.wait(1.0) == Freshness.MAX_WAIT  # nor long enough to hold up a stop
    off = Freshness(cost=0.0)
    off.round_trip = 0.085
    assert off.wait(0.04) == 0.0


def test_the_round_trip_is_measured_from_sent_to_answered() -> None:
    fresh = Freshness(cost=0.02)
    fresh.answered()  # nothing sent: nothing measured
    assert fresh.round_trip is None
    fresh.sent()
    time.sleep(0.05)
    fresh.answered()
    first = round_trip(fresh)
    assert first >= 0.05
    fresh.sent()
    fresh.answered()  # a fast answer moves the average a fifth of the way
    assert round_trip(fresh) == pytest.approx(first * (1 - Freshness.SMOOTHING), abs=0.005)


def round_trip(fresh: Freshness) -> float:
    assert fresh.round_trip is not None
    return fresh.round_trip


@pytest.fixture
def slow_feed(video_root: Path) -> Iterator[LatestFrameFeed]:
    """A looping 5-fps file, paced like a camera, read by a live feed."""
    path = video_root / "slow.mp4"
    if not path.exists():
        write_sample_video(path, frames=20, fps=SLOW_FPS)
    source = VideoSource("slow.mp4", loop=True)
    source.open()
    feed = LatestFrameFeed(source, scenario_id="freshness-test", reconnect_timeout=5)
    try:
        yield feed
    finally:
        feed.close()


def next_waiting(feed: LatestFrameFeed) -> int:
    """Take what waits, then block until the reader hands over a new frame: its index."""
    feed.next_frame(timeout=0.0)
    with feed._cond:
        feed._cond.wait_for(lambda: feed._latest is not None, timeout=5)
        assert feed._latest is not None
        return feed._latest.index


def test_a_live_feed_measures_its_streams_frame_interval(slow_feed: LatestFrameFeed) -> None:
    for _ in range(4):
        next_waiting(slow_feed)
    assert slow_feed.interval is not None
    assert 0.5 / SLOW_FPS < slow_feed.interval < 2.0 / SLOW_FPS
    due = slow_feed.successor_due(slow_feed.interval)
    assert due is not None and due <= slow_feed.interval


def test_a_frame_about_to_be_replaced_is_replaced_by_its_successor(
    slow_feed: LatestFrameFeed,
) -> None:
    for _ in range(3):
        next_waiting(slow_feed)  # the interval is measured
    waiting = next_waiting(slow_feed)
    dropped = slow_feed.dropped

    # Due within the wait allowed (any wait over a whole interval): its successor comes instead.
    frame = slow_feed.next_frame(timeout=0.0, fresher_within=2.0 / SLOW_FPS)

    assert frame is not None and frame.index == waiting + 1
    assert slow_feed.dropped == dropped + 1  # the frame replaced counts as dropped


def test_a_frame_not_about_to_be_replaced_is_taken_at_once(slow_feed: LatestFrameFeed) -> None:
    for _ in range(3):
        next_waiting(slow_feed)
    waiting = next_waiting(slow_feed)  # just arrived: its successor is 0.2 s away

    frame = slow_feed.next_frame(timeout=0.0, fresher_within=0.02)

    assert frame is not None and frame.index == waiting
