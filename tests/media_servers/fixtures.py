"""Live stream servers as pytest fixtures: an RTSP camera and an HTTP (MJPEG, HLS, files) server
(testbed/media_servers/servers.py).

Each runs as a child process that a test may kill (SIGKILL), freeze (SIGSTOP), thaw and start
again at the same address. Both are function-scoped: a test gets a fresh, running server and
every process is gone after it, whatever the test did to it.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from testbed.media_servers.servers import (
    SYSTEM_PYTHON,
    HttpStreamServer,
    RtspServer,
    ServerFailed,
    gst_rtsp_available,
)

OPENSSL_SELF_SIGNED = (
    "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2"
    " -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1"
)

__all__ = ["http_stream_server", "make_rtsp_server", "rtsp_server"]


def start(server: RtspServer | HttpStreamServer) -> None:
    try:
        server.start()
    except ServerFailed as exc:
        pytest.fail(str(exc), pytrace=False)


def require_gst_rtsp() -> None:
    """Fail (never skip) when Debian's python cannot load gst-rtsp-server: a skipped live-source
    test would hide exactly the failures these servers are here to find."""
    if not gst_rtsp_available():
        pytest.fail(
            f"{SYSTEM_PYTHON} cannot import gi.repository.GstRtspServer. Install (as root): "
            "apt-get install gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi "
            "glib-networking gstreamer1.0-plugins-base gstreamer1.0-plugins-good "
            "gstreamer1.0-plugins-ugly "
            "(./run.sh --test does it when run as root).",
            pytrace=False,
        )


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1, signed by itself, made with the openssl CLI (no
    Python dependency for it). Cameras carry such certificates; FFmpeg does not verify them
    unless told to (``tls_verify;1``)."""
    cert, key = directory / "rtsps-cert.pem", directory / "rtsps-key.pem"
    if cert.exists():
        return cert, key
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the openssl CLI is needed to make a test certificate for RTSPS", pytrace=False)
    made = subprocess.run(
        [openssl, *OPENSSL_SELF_SIGNED.split(), "-keyout", str(key), "-out", str(cert)],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        pytest.fail(f"openssl could not make a test certificate:\n{made.stderr}", pytrace=False)
    return cert, key


@pytest.fixture
def make_rtsp_server(video_root: Path, tmp_path: Path) -> Iterator[Callable[..., RtspServer]]:
    """Start RTSP servers serving ``video_root/loop.mp4`` at /file: ``make_rtsp_server()``, or
    ``make_rtsp_server(user="cam", password="secret", auth="digest" | "basic")`` for one that
    answers 401 without those credentials, and ``tls=True`` for RTSPS with a self-signed
    certificate (``url()`` is then ``rtsps://``). All are killed after the test."""
    require_gst_rtsp()
    servers: list[RtspServer] = []

    def make(
        *, user: str | None = None, password: str = "", auth: str = "digest", tls: bool = False
    ) -> RtspServer:
        log = tmp_path / f"rtsp-{len(servers)}.log"
        pem = self_signed_certificate(tmp_path) if tls else None
        server = RtspServer(video_root / "loop.mp4", log, user, password, auth, pem)
        servers.append(server)
        start(server)
        return server

    yield make
    for server in servers:
        server.kill()  # SIGKILL also ends a frozen one


@pytest.fixture
def rtsp_server(make_rtsp_server: Callable[..., RtspServer]) -> RtspServer:
    """A running RTSP server without credentials: ``url("test")``, ``url("file")``."""
    return make_rtsp_server()


@pytest.fixture
def http_stream_server(video_root: Path, tmp_path: Path) -> Iterator[HttpStreamServer]:
    """A running HTTP server of ``video_root``: ``url("mjpeg")``, ``url("hls/live/loop.m3u8")``,
    ``url("short.mp4")``..."""
    server = HttpStreamServer(video_root, tmp_path / "http.log")
    try:
        start(server)
        yield server
    finally:
        server.kill()
