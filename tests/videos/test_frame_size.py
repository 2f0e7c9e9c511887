"""The upload check decodes no frame larger than MISIS_MAX_FRAME_PIXELS: one 16k x 16k frame
costs about 1 GB in the process that decodes it. Files are made here, small and quick: a few
flat-colour frames compress to almost nothing, whatever their size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from pytest_django import Settings
from rest_framework.test import APIClient

from tests.videos.test_upload import stored_files, upload

pytestmark = pytest.mark.django_db

BIG = (4000, 4000)  # 16 Mpixel, over the default limit (3840 x 2160 = 8.3 Mpixel)


@pytest.fixture
def upload_root(tmp_path: Path, settings: Settings) -> Path:
    root = tmp_path / "videos"
    root.mkdir()
    settings.MISIS_VIDEO_ROOT = root
    return root


def write_flat_video(path: Path, size: tuple[int, int], frames: int = 3) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 25.0, size)
    try:
        image = np.full((size[1], size[0], 3), 90, np.uint8)
        for _ in range(frames):
            writer.write(image)
    finally:
        writer.release()
    return path


def claim_size(path: Path, size: tuple[int, int]) -> Path:
    """Make the MP4 sample description (stsd, mp4v entry) state another frame size than the
    stream's own headers: a header that lies."""
    data = bytearray(path.read_bytes())
    at = data.index(b"mp4v") + 4 + 24  # after the box type: reserved, index, pre-defined
    data[at : at + 4] = size[0].to_bytes(2, "big") + size[1].to_bytes(2, "big")
    path.write_bytes(bytes(data))
    return path


def assert_refused_for_size(response: Any, limit: int) -> None:
    assert response.status_code == 400, response.content
    [message] = response.json()["file"]
    assert f"{limit} pixels" in message and "MISIS_MAX_FRAME_PIXELS" in message, message


def test_frames_over_the_limit_are_refused_and_not_stored(
    api: APIClient, upload_root: Path, tmp_path: Path, settings: Settings
) -> None:
    big = write_flat_video(tmp_path / "big.mp4", BIG)
    assert big.stat().st_size < 1024 * 1024  # the attack is cheap to send
    assert_refused_for_size(upload(api, big), settings.MISIS_MAX_FRAME_PIXELS)
    assert stored_files(upload_root) == []


def test_a_header_that_claims_small_frames_does_not_get_big_ones_decoded(
    api: APIClient, upload_root: Path, tmp_path: Path, settings: Settings
) -> None:
    liar = claim_size(write_flat_video(tmp_path / "liar.mp4", BIG), (320, 240))
    assert_refused_for_size(upload(api, liar), settings.MISIS_MAX_FRAME_PIXELS)
    assert stored_files(upload_root) == []


def test_the_limit_is_the_setting(
    api: APIClient, video_root: Path, upload_root: Path, settings: Settings
) -> None:
    settings.MISIS_MAX_FRAME_PIXELS = 320 * 240 - 1
    assert_refused_for_size(upload(api, video_root / "short.mp4"), 320 * 240 - 1)
    settings.MISIS_MAX_FRAME_PIXELS = 320 * 240
    response = upload(api, video_root / "short.mp4")
    assert response.status_code == 201, response.content
    assert (response.json()["width"], response.json()["height"]) == (320, 240)


def test_frames_up_to_the_limit_pass(
    api: APIClient, upload_root: Path, tmp_path: Path, settings: Settings
) -> None:
    settings.MISIS_MAX_FRAME_PIXELS = BIG[0] * BIG[1]
    response = upload(api, write_flat_video(tmp_path / "big.mp4", BIG))
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["width"], body["height"], body["frames"], body["fps"]) == (*BIG, 3, 25.0)


def test_a_frame_far_over_the_limit_is_refused_before_a_picture_is_made(
    api: APIClient, upload_root: Path, tmp_path: Path, settings: Settings
) -> None:
    """FFmpeg refuses the size from the stream's headers (max_pixels): no frame is decoded, so
    the answer cannot name the frame's size (a decoded frame over the limit would)."""
    settings.MISIS_MAX_FRAME_PIXELS = 1_000_000
    big = write_flat_video(tmp_path / "big.mp4", BIG)
    response = upload(api, big)
    assert_refused_for_size(response, 1_000_000)
    assert "4000x4000" not in response.json()["file"][0]
    settings.MISIS_MAX_FRAME_PIXELS = BIG[0] * BIG[1] - 1  # decoded, then refused
    response = upload(api, big)
    assert_refused_for_size(response, BIG[0] * BIG[1] - 1)
    assert "frames of 4000x4000 larger" in response.json()["file"][0]
    assert stored_files(upload_root) == []


@pytest.mark.parametrize("ext", ["mp4", "mkv", "avi", "ts"])
def test_the_upload_counts_frames_as_the_runner_does(
    api: APIClient, upload_root: Path, tmp_path: Path, ext: str
) -> None:
    """The runner reads with OpenCV: the answer's frames and fps are what it will count, also
    for containers that state no frame count (Matroska, MPEG-TS)."""
    path = write_flat_video(tmp_path / f"clip.{ext}", (160, 120), frames=30)
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        expected = (int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), round(cap.get(cv2.CAP_PROP_FPS), 3))
    finally:
        cap.release()
    response = upload(api, path)
    assert response.status_code == 201, response.content
    assert (response.json()["frames"], response.json()["fps"]) == expected
