"""Media servers as child processes: an RTSP camera and an HTTP (MJPEG, HLS, files) server.

Each may be killed (SIGKILL), frozen (SIGSTOP), thawed and started again at the same address.
tests/media_servers/fixtures.py wraps them as pytest fixtures; bench/ starts them directly.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
from pathlib import Path

from testbed.processes import die_with_parent, read_line

HERE = Path(__file__).resolve().parent
SYSTEM_PYTHON = "/usr/bin/python3"  # gi and gst-rtsp-server come from apt, not from the venv
GST_RTSP_CHECK = (
    "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
)
START_TIMEOUT_S = 20.0


class ServerFailed(RuntimeError):
    """A server did not print READY in time; the message carries its stderr."""


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
            raise ServerFailed(
                f"{' '.join(self.argv)} did not start (got {line!r}); its stderr:\n"
                + self.log_path.read_text()[-3000:]
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
    """rtsp_server.py: ``url("test")`` a live pattern, ``url("file")`` a looped file. With a
    user, ``url(mount)`` carries the credentials; with ``tls=(cert, key)`` it serves RTSPS only
    and its URLs are ``rtsps://``."""

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
    """http_server.py: ``url("mjpeg")`` an endless MJPEG stream, ``url("hls/vod/short.m3u8")``
    and ``url("hls/live/short.m3u8")`` HLS of ``short.mp4``, ``url("short.mp4")`` a file of the
    root, with Range support."""

    scheme = "http"

    def __init__(self, root: Path, log_path: Path) -> None:
        super().__init__(
            [sys.executable, str(HERE / "http_server.py"), "--root", str(root)], log_path
        )


@functools.cache
def gst_rtsp_available() -> bool:
    """Whether Debian's python can load gst-rtsp-server (rtsp_server.py needs it)."""
    return os.access(SYSTEM_PYTHON, os.X_OK) and (
        subprocess.run([SYSTEM_PYTHON, "-c", GST_RTSP_CHECK], capture_output=True).returncode == 0
    )
