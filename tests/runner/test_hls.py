"""HLS over HTTP: a VOD playlist is read as a file, to its end; a live one as a stream that
outlasts its source and comes back after its server restarts (tests/media_servers/http_server.py
cuts the video root's files into segments)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from pytest_django import Settings

from runner.feeds import FileFeed, LatestFrameFeed, open_feed
from runner.sources import Frame, VideoSource
from tests.helpers import read_all


@pytest.fixture(autouse=True)
def _short_timeouts(settings: Settings) -> None:
    settings.MISIS_STREAM_OPEN_TIMEOUT = 5
    settings.MISIS_STREAM_READ_TIMEOUT = 3
    settings.MISIS_HLS_READ_TIMEOUT = 3  # the server cuts 1.2 s segments
    settings.MISIS_RECONNECT_BACKOFF_BASE = 0.2
    settings.MISIS_RECONNECT_BACKOFF_MAX = 1


@pytest.mark.parametrize(
    ("name", "frames", "shape"), [("short", 40, (240, 320, 3)), ("long", 1500, (120, 160, 3))]
)
def test_vod_is_read_as_a_file_to_its_end(
    name: str, frames: int, shape: tuple[int, ...], http_stream_server: Any
) -> None:
    source = VideoSource(http_stream_server.url(f"hls/vod/{name}.m3u8"))
    source.open()
    assert not source.live and source.frames_total == frames
    assert isinstance(open_feed(source), FileFeed)
    read = read_all(source)
    source.close()
    assert [frame.index for frame in read] == list(range(frames))
    assert {frame.image.shape for frame in read} == {shape}
    # The segments' timestamps run on: pts is the position in the whole video.
    assert [frame.pts for frame in read] == sorted({frame.pts for frame in read})
    assert read[-1].pts == pytest.approx((frames - 1) / 25, abs=0.01)


def test_vod_resumes_at_start_frame(http_stream_server: Any) -> None:
    url = http_stream_server.url("hls/vod/long.m3u8")
    source = VideoSource(url)
    source.open()
    whole = read_all(source)
    source.close()
    resumed = VideoSource(url, start_frame=1450)
    resumed.open()
    rest = read_all(resumed)
    resumed.close()
    assert [frame.index for frame in rest] == list(range(1450, 1500))
    assert np.array_equal(rest[0].image, whole[1450].image)


def test_live_is_a_stream_that_outlasts_its_source(http_stream_server: Any) -> None:
    source = VideoSource(http_stream_server.url("hls/live/short.m3u8"))  # 40 frames, 1.6 s
    source.open()
    assert source.live and source.frames_total is None
    frames: list[Frame] = []
    # Until more than twice the file has come (about 3 s at 25 fps); the bound only stops a
    # hung test, so that a loaded machine reading slower still passes.
    deadline = time.monotonic() + 60
    while len(frames) <= 2 * 40:
        frame = source.read()  # a live read that times out raises SourceError
        assert frame is not None
        frames.append(frame)
        assert time.monotonic() < deadline, f"{len(frames)} frames in 60 s"
    source.close()
    # The window's first segments at once, then 25 frames a second, looping the file.
    assert [frame.index for frame in frames] == list(range(len(frames)))
    assert {frame.image.shape for frame in frames} == {(240, 320, 3)}


def test_live_feed_comes_back_after_the_server_restarts(http_stream_server: Any) -> None:
    source = VideoSource(http_stream_server.url("hls/live/loop.m3u8"))
    source.open()
    feed = open_feed(source, scenario_id="t", reconnect_timeout=60)
    assert isinstance(feed, LatestFrameFeed)
    try:
        assert feed.next_frame(timeout=30) is not None
        http_stream_server.kill()
        lost = time.monotonic()
        while feed.state == "connected":  # segments already fetched come first
            feed.next_frame(timeout=0.2)
            assert time.monotonic() - lost < 30, "the feed never noticed the server left"
        http_stream_server.start()
        feed.next_frame(timeout=0)  # anything left from before
        back = time.monotonic()
        while (frame := feed.next_frame(timeout=0.5)) is None:
            assert time.monotonic() - back < 30, f"no frame since the restart: {feed.last_error}"
        assert feed.reconnects >= 1 and feed.state == "connected"
        assert frame.image.shape == (240, 320, 3)
    finally:
        feed.close()


def test_hls_reads_wait_longer_than_other_streams(settings: Settings) -> None:
    settings.MISIS_STREAM_READ_TIMEOUT = 5
    settings.MISIS_HLS_READ_TIMEOUT = 20
    assert VideoSource("https://cdn.example.com/live/cam.m3u8?token=x").read_timeout == 20
    assert VideoSource("http://cam.local/video.mjpg").read_timeout == 5
    assert VideoSource("rtsp://cam/stream").read_timeout == 5
