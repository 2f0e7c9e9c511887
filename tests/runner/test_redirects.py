"""FFmpeg follows HTTP redirects by itself, each hop through the egress proxy, which checks
the target against the operator's host lists when it connects."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pytest_django import Settings

from runner.sources import SourceError, VideoSource


class Redirector(BaseHTTPRequestHandler):
    routes: dict[str, str] = {}

    def do_GET(self) -> None:
        target = self.routes.get(self.path)
        if target is None:
            self.send_error(404)
            return
        self.send_response(302)
        self.send_header("Location", target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def redirector() -> Iterator[tuple[str, dict[str, str]]]:
    routes: dict[str, str] = {}
    handler = type("Handler", (Redirector,), {"routes": routes})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", routes
    server.shutdown()
    server.server_close()


def test_a_redirect_to_a_denied_host_is_refused(
    redirector: tuple[str, dict[str, str]], settings: Settings
) -> None:
    base, routes = redirector
    settings.MISIS_SOURCE_DENY = ["169.254.0.0/16"]
    routes["/cam.mjpg"] = "/hop"
    routes["/hop"] = "http://169.254.169.254/latest/meta-data/"
    with pytest.raises(SourceError, match=r"169\.254\.169\.254.*deny list"):
        VideoSource(f"{base}/cam.mjpg").open()


def test_an_allowed_redirect_is_followed_by_ffmpeg(
    redirector: tuple[str, dict[str, str]], http_stream_server: Any
) -> None:
    base, routes = redirector
    routes["/clip.mp4"] = http_stream_server.url("short.mp4")
    source = VideoSource(f"{base}/clip.mp4")
    source.open()
    assert source.frames_total == 40
    source.close()


def test_endless_redirects_are_refused(redirector: tuple[str, dict[str, str]]) -> None:
    base, routes = redirector
    routes["/a"] = "/b"
    routes["/b"] = "/a"
    # FFmpeg's own bound on hops ends it; every hop went through the egress proxy.
    with pytest.raises(SourceError, match="cannot open source"):
        VideoSource(f"{base}/a").open()
