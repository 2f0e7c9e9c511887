"""Decoded frames are converted to BGR only when used; their luma comes without a conversion."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from pytest_django import Settings

from runner.feeds import FileFeed, LatestFrameFeed
from runner.sampling import Sampler
from runner.sources import Frame, VideoSource
from sources import decoder
from tests.helpers import read_all


def test_frames_the_sampler_drops_are_never_converted(video_root: Path) -> None:
    source = VideoSource("long.mp4")  # 1500 frames at 25 fps
    source.open()
    feed = FileFeed(source)
    sampler = Sampler(5.0)
    before = decoder.conversions()
    taken, dropped = [], []
    try:
        while (frame := feed.next_frame(timeout=0)) is not None and frame.index < 200:
            if sampler.take(frame.pts):
                assert frame.image.shape == (120, 160, 3)
                assert frame.image is frame.image  # converted once, then kept
                taken.append(frame)
            else:
                dropped.append(frame)
    finally:
        feed.close()
    assert len(taken) == 40 and len(dropped) == 160  # 5 of 25 a second
    assert decoder.conversions() - before == len(taken)
    assert all(f.picture.converted for f in taken)
    assert not any(f.picture.converted for f in dropped)


def test_a_live_feed_converts_only_the_frames_taken(video_root: Path) -> None:
    source = VideoSource("loop.mp4", loop=True)  # a looping file: paced like a camera
    source.open()
    feed = LatestFrameFeed(source, scenario_id="frames-test", reconnect_timeout=5)
    before = decoder.conversions()
    taken: list[Frame] = []
    try:
        while len(taken) < 3:
            frame = feed.next_frame(timeout=2.0)
            assert frame is not None
            taken.append(frame)
            frame.image  # noqa: B018 - the analysed frame is converted
            feed._stop.wait(0.3)  # the reader overwrites several frames meanwhile
        dropped = feed.dropped
    finally:
        feed.close()
    assert dropped >= 3
    # Frames the reader decoded and overwrote were never converted: only the three taken.
    assert decoder.conversions() - before == 3


def luma_matches_bgr(path: Path, name: str) -> None:
    source = VideoSource(name)
    source.open()
    try:
        frames = read_all(source)[:10]
    finally:
        source.close()
    assert frames
    before = decoder.conversions()
    grays = [frame.gray for frame in frames]
    assert decoder.conversions() == before  # the luma needs no BGR conversion
    assert not any(frame.picture.converted for frame in frames)
    for frame, gray in zip(frames, grays, strict=True):
        assert gray.shape == frame.image.shape[:2] and gray.dtype == np.uint8
        expected = cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY)
        diff = np.abs(gray.astype(np.int16) - expected.astype(np.int16))
        assert diff.mean() < 1.0, (name, diff.mean())
        assert np.percentile(diff, 99) <= 3, (name, np.percentile(diff, 99))


def test_gray_is_the_luma_of_a_video_range_stream(video_root: Path) -> None:
    luma_matches_bgr(video_root, "short.mp4")  # mpeg4, yuv420p: 16-235 stretched to 0-255


def test_gray_is_the_luma_of_a_full_range_stream(video_root: Path) -> None:
    # Motion JPEG decodes to yuvj4xxp: full range, the plane as it is.
    path = video_root / "mjpeg-frames.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 25, (160, 120))
    rng = np.random.default_rng(7)
    background = cv2.GaussianBlur(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), (0, 0), 2)
    for i in range(10):
        writer.write(np.roll(background, 3 * i, axis=1))
    writer.release()
    try:
        source = VideoSource("mjpeg-frames.avi")
        source.open()
        frame = source.read()
        source.close()
        assert frame is not None
        assert frame.picture._frame is not None
        assert frame.picture._frame.format.name.startswith("yuvj")
        luma_matches_bgr(video_root, "mjpeg-frames.avi")
    finally:
        path.unlink()


@pytest.mark.parametrize("threads", [1, 0])
def test_decoder_threads_follow_the_setting(
    video_root: Path, settings: Settings, threads: int
) -> None:
    settings.MISIS_DECODER_THREADS = threads
    source = VideoSource("short.mp4")
    source.open()
    try:
        assert source._decoder is not None
        assert source._decoder.stream.codec_context.thread_count == threads
        assert len(read_all(source)) == 40
    finally:
        source.close()


def test_a_picture_made_from_a_bgr_image_is_that_image() -> None:
    image = np.random.default_rng(3).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    before = decoder.conversions()
    picture = decoder.Picture.from_bgr(image)
    assert picture.bgr() is image and picture.converted
    assert (picture.width, picture.height) == (64, 48)
    assert (picture.gray() == cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)).all()
    assert decoder.conversions() == before
