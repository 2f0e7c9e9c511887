"""The stream servers do what the live-source tests rely on: frames, restarts, hangs."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from testbed.media_servers.servers import HttpStreamServer, RtspServer

OPEN_TIMEOUT_MS = 5000
READ_TIMEOUT_MS = 2000


@pytest.fixture(autouse=True)
def _rtsp_over_tcp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")


def capture(url: str) -> cv2.VideoCapture:
    cap = cv2.VideoCapture(
        url,
        cv2.CAP_FFMPEG,
        [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            OPEN_TIMEOUT_MS,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            READ_TIMEOUT_MS,
        ],
    )
    assert cap.isOpened(), f"cannot open {url}"
    return cap


def read_frames(url: str, n: int) -> list[np.ndarray]:
    cap = capture(url)
    try:
        frames: list[np.ndarray] = []
        for _ in range(n):
            ok, frame = cap.read()
            assert ok, f"{url}: no frame after {len(frames)}"
            frames.append(frame)
        return frames
    finally:
        cap.release()


def shapes(frames: list[np.ndarray]) -> list[tuple[int, ...]]:
    return [frame.shape for frame in frames]


def test_rtsp_test_pattern(rtsp_server: RtspServer) -> None:
    assert shapes(read_frames(rtsp_server.url("test"), 10)) == [(240, 320, 3)] * 10


def test_rtsp_file_loops_in_real_time(rtsp_server: RtspServer, video_root: Path) -> None:
    local = cv2.VideoCapture(str(video_root / "loop.mp4"))
    first = local.read()[1]
    local.release()
    started = time.monotonic()
    frames = read_frames(rtsp_server.url("file"), 110)  # loop.mp4 has 100 frames
    assert time.monotonic() - started > 3.5  # 25 fps, paced like a camera, not as fast as possible
    # The file's own frames (not re-encoded), from its first one on, and again after the loop.
    assert np.array_equal(frames[0], first)
    assert np.array_equal(frames[100], first)


def test_rtsp_comes_back_at_the_same_url(rtsp_server: RtspServer) -> None:
    url = rtsp_server.url("test")
    cap = capture(url)
    assert cap.read()[0]
    rtsp_server.kill()
    while cap.read()[0]:  # frames already on their way, then the end
        pass
    cap.release()
    assert not cv2.VideoCapture(url, cv2.CAP_FFMPEG).isOpened()
    rtsp_server.start()
    assert rtsp_server.url("test") == url
    assert len(read_frames(url, 5)) == 5
    rtsp_server.restart()
    assert len(read_frames(rtsp_server.url("file"), 5)) == 5


@pytest.mark.parametrize(
    ("server", "path"), [("rtsp_server", "test"), ("http_stream_server", "mjpeg")]
)
def test_reads_from_a_frozen_server_time_out(
    server: str, path: str, request: pytest.FixtureRequest
) -> None:
    frozen: RtspServer | HttpStreamServer = request.getfixturevalue(server)
    cap = capture(frozen.url(path))
    assert cap.read()[0]
    frozen.freeze()
    try:
        frozen_at = time.monotonic()
        # Frames already on their way come first; over RTSP, OpenCV also returns a late frame or
        # two after reads that hit the timeout. Every read returns within about the timeout.
        ok = True
        while ok:
            started = time.monotonic()
            ok = cap.read()[0]
            assert time.monotonic() - started < READ_TIMEOUT_MS / 1000 + 3
            assert time.monotonic() - frozen_at < 4 * READ_TIMEOUT_MS / 1000 + 3
    finally:
        frozen.thaw()
        cap.release()


@pytest.mark.parametrize("auth", ["digest", "basic"])
def test_rtsp_credentials(auth: str, make_rtsp_server: Callable[..., RtspServer]) -> None:
    server = make_rtsp_server(user="cam", password="s3cret", auth=auth)
    assert server.url("test").startswith("rtsp://cam:s3cret@127.0.0.1:")
    assert len(read_frames(server.url("file"), 3)) == 3
    wrong = server.url("test").replace("s3cret", "wrong")
    assert not cv2.VideoCapture(wrong, cv2.CAP_FFMPEG).isOpened()
    assert not cv2.VideoCapture(server.url("test", auth=False), cv2.CAP_FFMPEG).isOpened()


@pytest.mark.parametrize("user", [None, "cam"])
def test_rtsps_with_a_self_signed_certificate(
    user: str | None, make_rtsp_server: Callable[..., RtspServer]
) -> None:
    server = make_rtsp_server(user=user, password="s3cret", tls=True)
    url = server.url("test")
    assert url.startswith("rtsps://cam:s3cret@127.0.0.1:" if user else "rtsps://127.0.0.1:")
    # FFmpeg does not verify the certificate by default, as cameras' are mostly self-signed.
    assert shapes(read_frames(url, 10)) == [(240, 320, 3)] * 10
    assert len(read_frames(server.url("file"), 3)) == 3
    # A plain RTSP client gets its connection reset: the server speaks TLS only.
    assert not cv2.VideoCapture(url.replace("rtsps://", "rtsp://"), cv2.CAP_FFMPEG).isOpened()
    if user:
        wrong = url.replace("s3cret", "wrong")
        assert not cv2.VideoCapture(wrong, cv2.CAP_FFMPEG).isOpened()
        assert not cv2.VideoCapture(server.url("test", auth=False), cv2.CAP_FFMPEG).isOpened()


def test_rtsps_certificate_is_verified_only_when_asked(
    make_rtsp_server: Callable[..., RtspServer], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = make_rtsp_server(tls=True).url("test")
    monkeypatch.setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp|tls_verify;1")
    assert not cv2.VideoCapture(url, cv2.CAP_FFMPEG).isOpened()
    trusted = f"rtsp_transport;tcp|tls_verify;1|ca_file;{tmp_path / 'rtsps-cert.pem'}"
    monkeypatch.setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", trusted)
    assert len(read_frames(url, 3)) == 3


def test_rtsps_comes_back_at_the_same_url(make_rtsp_server: Callable[..., RtspServer]) -> None:
    server = make_rtsp_server(user="cam", password="s3cret", tls=True)
    url = server.url("test")
    assert len(read_frames(url, 5)) == 5
    server.kill()
    assert not cv2.VideoCapture(url, cv2.CAP_FFMPEG).isOpened()
    server.start()
    assert server.url("test") == url
    assert len(read_frames(url, 5)) == 5


def test_http_mjpeg(http_stream_server: HttpStreamServer) -> None:
    started = time.monotonic()
    assert shapes(read_frames(http_stream_server.url("mjpeg"), 12)) == [(240, 320, 3)] * 12
    assert time.monotonic() - started > 0.8  # about 10 fps


def test_http_progressive_mp4(http_stream_server: HttpStreamServer) -> None:
    # OpenCV writes the moov atom last: FFmpeg needs Range requests to read such a file.
    assert len(read_frames(http_stream_server.url("short.mp4"), 40)) == 40
    request = urllib.request.Request(
        http_stream_server.url("short.mp4"), headers={"Range": "bytes=4-11"}
    )
    with urllib.request.urlopen(request) as response:
        assert response.status == 206
        assert response.read() == b"ftypisom"
