"""Reading real video files: resume, loop, and the newest-frame-wins feed."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from runner.feeds import FileFeed, LatestFrameFeed, open_feed
from runner.sources import SourceError, VideoSource, resolve_local
from tests.helpers import read_all, wait_for


def indexes(source: VideoSource) -> list[int]:
    """The index of every frame of ``source``, opened and closed here."""
    source.open()
    try:
        return [frame.index for frame in read_all(source)]
    finally:
        source.close()


def test_file_reads_every_frame_and_resumes(video_root: Path) -> None:
    assert indexes(VideoSource("short.mp4")) == list(range(40))
    assert indexes(VideoSource("short.mp4", start_frame=25)) == list(range(25, 40))


def test_resume_lands_on_the_same_pixels(video_root: Path) -> None:
    whole = VideoSource("short.mp4")
    whole.open()
    frames = [whole.read() for _ in range(12)]
    resumed = VideoSource("short.mp4", start_frame=11)
    resumed.open()
    again = resumed.read()
    assert again is not None and frames[11] is not None
    assert again.index == 11
    assert (again.image == frames[11].image).all()
    assert again.pts == pytest.approx(frames[11].pts)


def test_looping_file_keeps_counting(video_root: Path) -> None:
    source = VideoSource("short.mp4", start_frame=38, loop=True)
    source.realtime = False  # read as fast as possible for the test
    source.open()
    frames = [source.read() for _ in range(5)]
    assert [f.index for f in frames if f] == [38, 39, 40, 41, 42]
    assert frames[2] is not None and frames[1] is not None
    assert frames[2].pts > frames[1].pts  # pts runs on across the loop


def test_missing_file_and_escapes_are_refused(video_root: Path) -> None:
    with pytest.raises(SourceError, match="not found"):
        VideoSource("nope.mp4").open()
    with pytest.raises(SourceError, match="cannot open"):
        VideoSource("notes.txt").open()
    for bad in ("/etc/passwd", "../x.mp4", "."):
        with pytest.raises(SourceError):
            resolve_local(bad)


def test_file_feed_drops_nothing(video_root: Path) -> None:
    source = VideoSource("short.mp4")
    source.open()
    feed = open_feed(source)
    assert isinstance(feed, FileFeed)
    seen = []
    while (frame := feed.next_frame(0)) is not None:
        seen.append(frame.index)
        time.sleep(0.001)
    assert feed.ended and feed.dropped == 0 and seen == list(range(40))


def test_latest_frame_feed_drops_stale_frames_for_a_slow_consumer(video_root: Path) -> None:
    source = VideoSource("loop.mp4", loop=True)  # a camera-like source at 25 fps
    source.open()
    feed = open_feed(source)
    assert isinstance(feed, LatestFrameFeed)
    taken: list[int] = []
    try:
        # Six frames, however long a loaded machine takes (the bound only stops a hung test).
        deadline = time.monotonic() + 60
        while len(taken) < 6:
            assert time.monotonic() < deadline, taken
            frame = feed.next_frame(1.0)
            if frame is not None:
                taken.append(frame.index)
            time.sleep(0.2)  # a detector much slower than the source
    finally:
        feed.close()
    assert taken == sorted(set(taken))  # newest each time, never twice
    gaps = [b - a for a, b in itertools.pairwise(taken)]
    # ~5 frames arrive per 200 ms; only the newest is handed on. A starved reader may bring
    # fewer, so no exact gap: frames were skipped, and each skipped one counted as dropped.
    assert max(gaps) >= 2, gaps
    assert feed.dropped >= sum(g - 1 for g in gaps)


def test_symlinks_are_resolved_before_the_root_check(tmp_path: Path) -> None:
    root, outside = tmp_path / "videos", tmp_path / "secret"
    root.mkdir()
    outside.mkdir()
    (outside / "x.mp4").write_bytes(b"")
    (root / "inside.mp4").write_bytes(b"")
    (root / "link.mp4").symlink_to(outside / "x.mp4")
    (root / "dir").symlink_to(outside, target_is_directory=True)
    assert resolve_local("inside.mp4", root=root) == (root / "inside.mp4").resolve()
    for escape in ("link.mp4", "dir/x.mp4"):
        with pytest.raises(SourceError, match="leaves the video root"):
            resolve_local(escape, root=root)


@pytest.fixture(scope="session")
def noisy_video(video_root: Path) -> str:
    """300 frames of noise: megabytes that no socket buffer holds whole."""
    path = video_root / "noise.mp4"
    out = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 25, (320, 240))
    rng = np.random.default_rng(7)
    for _ in range(300):
        out.write(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))
    out.release()
    return path.name


def test_remote_file_cut_short_is_reopened_where_it_stopped(
    noisy_video: str, http_stream_server: Any
) -> None:
    source = VideoSource(http_stream_server.url(noisy_video))
    source.open()
    assert not source.live and source.frames_total == 300
    first = [source.read() for _ in range(10)]
    http_stream_server.kill()  # the connection drops mid-file
    http_stream_server.start()
    rest = []
    while (frame := source.read()) is not None:
        rest.append(frame.index)
    source.close()
    # Every frame once: resumed by FFmpeg's own Range request through the egress proxy, or
    # by VideoSource reopening where it stopped.
    assert [f.index for f in first if f] + rest == list(range(300))


def test_remote_file_that_cannot_be_reopened_raises(
    noisy_video: str, http_stream_server: Any
) -> None:
    source = VideoSource(http_stream_server.url(noisy_video))
    source.open()
    source.read()
    http_stream_server.kill()
    with pytest.raises(SourceError, match="cannot connect"):
        while source.read() is not None:
            pass
    source.close()


def _loopback_threads() -> list[str]:
    names = ("rtsp-relay", "egress-proxy")
    return [t.name for t in threading.enumerate() if t.name.startswith(names)]


def test_closing_a_network_source_leaves_no_thread_behind(
    rtsp_server: Any, http_stream_server: Any, noisy_video: str
) -> None:
    """Each open of a camera or a remote file runs a server on loopback (the RTSP relay, the
    egress proxy); closing the source ends it and all its threads. Its accepting thread used
    to stay blocked for good: one thread more in the runner per open, reconnects included."""
    before = _loopback_threads()
    for url in [rtsp_server.url("file"), http_stream_server.url(noisy_video)] * 3:
        source = VideoSource(url)
        source.open()
        assert source.read() is not None
        assert _loopback_threads() != before  # the server of this open runs meanwhile
        source.close()
    wait_for(lambda: _loopback_threads() == before, 5)
