"""Live stream servers as pytest fixtures: an RTSP camera and an HTTP (MJPEG, HLS, files) server.

Each runs as a child process that a test may kill (SIGKILL), freeze (SIGSTOP), thaw and start
again at the same address. Both are function-scoped: a test gets a fresh, running server and
every process is gone after it, whatever the test did to it.
"""

from __future__ import annotations

import ctypes
import functools
import os
import select
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

HERE = Path(__file__).resolve().parent
SYSTEM_PYTHON = "/usr/bin/python3"  # gi and gst-rtsp-server come from apt, not from the venv
GST_RTSP_CHECK = (
    "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
)
START_TIMEOUT_S = 20.0
OPENSSL_SELF_SIGNED = (
    "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2"
    " -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1"
)
LIBC = ctypes.CDLL(None, use_errno=True)

__all__ = ["http_stream_server", "make_rtsp_server", "rtsp_server"]


class ServerProcess:
    """A child process that prints ``READY <scheme>://127.0.0.1:PORT`` once it listens.

    The first start takes any free port; every later one reuses it, so a restarted server is
    at the same URL, as a camera that comes back is.
    """

    scheme = ""

    def __init__(self, argv: list[str], log_path: Path) -> None:
        self.argv = argv
        self.log_path = log_path
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None

    def url(self, path: str = "") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        with self.log_path.open("a") as log:
            self.proc = subprocess.Popen(
                [*self.argv, "--port", str(self.port)],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                preexec_fn=die_with_parent,
            )
        line = read_line(self.proc.stdout, START_TIMEOUT_S)  # type: ignore[arg-type]
        if not line.startswith("READY "):
            self.kill()
            pytest.fail(
                f"{' '.join(self.argv)} did not start (got {line!r}); its stderr:\n"
                + self.log_path.read_text()[-3000:],
                pytrace=False,
            )
        self.port = int(line.rsplit(":", 1)[1])

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a power cut would: no goodbye to the clients."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def freeze(self) -> None:
        """SIGSTOP: the server keeps its connections open but sends nothing (a hung camera)."""
        assert self.proc is not None and self.proc.poll() is None, "not running"
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, "not running"
        self.proc.send_signal(signal.SIGCONT)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class RtspServer(ServerProcess):
    """tests/media_servers/rtsp_server.py: ``url("test")`` a live pattern, ``url("file")`` a
    looped file. With a user, ``url(mount)`` carries the credentials; with ``tls=(cert, key)``
    it serves RTSPS only and its URLs are ``rtsps://``."""

    scheme = "rtsp"

    def __init__(
        self,
        file: Path,
        log_path: Path,
        user: str | None = None,
        password: str = "",
        auth: str = "digest",
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        argv = [SYSTEM_PYTHON, str(HERE / "rtsp_server.py"), "--file", str(file)]
        if user:
            argv += ["--user", user, "--password", password, "--auth", auth]
        if tls:
            argv += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
            self.scheme = "rtsps"
        super().__init__(argv, log_path)
        self.user, self.password = user, password

    def url(self, path: str = "test", *, auth: bool = True) -> str:
        url = super().url(path)
        if self.user and auth:
            prefix = f"{self.scheme}://"
            url = url.replace(prefix, f"{prefix}{self.user}:{self.password}@", 1)
        return url


class HttpStreamServer(ServerProcess):
    """tests/media_servers/http_server.py: ``url("mjpeg")`` an endless MJPEG stream,
    ``url("hls/vod/short.m3u8")`` and ``url("hls/live/short.m3u8")`` HLS of ``short.mp4``,
    ``url("short.mp4")`` a file of the root, with Range support."""

    scheme = "http"

    def __init__(self, root: Path, log_path: Path) -> None:
        super().__init__(
            [sys.executable, str(HERE / "http_server.py"), "--root", str(root)], log_path
        )


def die_with_parent() -> None:
    """Runs in the child before exec: the kernel SIGKILLs it when pytest dies, so that a
    timed-out or killed test run leaves no server behind."""
    LIBC.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def read_line(stream: IO[str], timeout: float) -> str:
    """The next line of a child's stdout, or "" after the timeout or at its end."""
    ready, _, _ = select.select([stream], [], [], timeout)
    return stream.readline().strip() if ready else ""


@functools.cache
def gst_rtsp_available() -> bool:
    return os.access(SYSTEM_PYTHON, os.X_OK) and (
        subprocess.run([SYSTEM_PYTHON, "-c", GST_RTSP_CHECK], capture_output=True).returncode == 0
    )


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
        server.start()
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
        server.start()
        yield server
    finally:
        server.kill()
