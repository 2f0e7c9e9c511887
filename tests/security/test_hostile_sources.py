"""Sources built to turn the runner against the deployment: each must leave the forbidden
internal host (tests/media_servers/internal_host.py, 127.0.0.2, denied) without a single
connection, and fail with a clear error.

The servers here are hostile on purpose: an HTTP server that answers a probe and FFmpeg
differently, an HLS playlist whose segments and key live on the internal host, an RTSP server
that redirects DESCRIBE there, and the address spellings that used to slip past the deny list.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pytest_django import Settings

from runner.sources import SourceError, VideoSource
from tests.media_servers.internal_host import InternalHost


@pytest.fixture(autouse=True)
def _short_timeouts(settings: Settings) -> None:
    settings.MISIS_STREAM_OPEN_TIMEOUT = 4
    settings.MISIS_STREAM_READ_TIMEOUT = 2


def serve(handler: Callable[[BaseHTTPRequestHandler], None]) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            handler(self)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def reply(request: BaseHTTPRequestHandler, status: int, body: bytes = b"", **headers: str) -> None:
    request.send_response(status)
    for name, value in headers.items():
        request.send_header(name.replace("_", "-"), value)
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)


def open_fails(source: str) -> str:
    with pytest.raises(SourceError) as caught:
        VideoSource(source).open()
    return str(caught.value)


def test_the_internal_host_itself_is_refused(internal_host: InternalHost) -> None:
    for source in (f"http://{internal_host.address}/", f"rtsp://{internal_host.address}/x"):
        assert "deny list" in open_fails(source)
    assert internal_host.untouched()


def test_redirect_shown_only_to_ffmpeg_is_refused(internal_host: InternalHost) -> None:
    """The server answers anything but FFmpeg with 200, and FFmpeg with a 302 inside."""
    seen: list[str] = []

    def two_faced(request: BaseHTTPRequestHandler) -> None:
        agent = request.headers.get("User-Agent", "")
        seen.append(agent)
        if agent.startswith("Lavf"):
            reply(request, 302, Location=f"http://{internal_host.address}/latest/meta-data/")
        else:
            reply(request, 200, b"--frame\r\n", Content_Type="multipart/x-mixed-replace")

    for base in serve(two_faced):
        error = open_fails(f"{base}/cam.mjpg")
    assert any(agent.startswith("Lavf") for agent in seen)  # FFmpeg did ask, and got the 302
    assert "deny list" in error and "127.0.0.2" in error
    assert internal_host.untouched()


def test_hls_segments_and_key_on_the_internal_host_are_refused(
    internal_host: InternalHost,
) -> None:
    internal = f"http://{internal_host.address}"
    playlists = {
        "/key.m3u8": (
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n"
            f'#EXT-X-KEY:METHOD=AES-128,URI="{internal}/key"\n'
            f"#EXTINF:1.2,\n{internal}/seg0.ts\n#EXT-X-ENDLIST\n"
        ),
        "/segments.m3u8": (
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n"
            f"#EXTINF:1.2,\n{internal}/seg0.ts\n#EXTINF:1.2,\n{internal}/seg1.ts\n"
            "#EXT-X-ENDLIST\n"
        ),
        "/local.m3u8": (
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:1.2,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"
        ),
        "/gopher.m3u8": (
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:1.2,\n"
            f"gopher://{internal_host.address}/_FLUSHALL\n#EXT-X-ENDLIST\n"
        ),
    }

    def playlist(request: BaseHTTPRequestHandler) -> None:
        body = playlists[request.path].encode()
        reply(request, 200, body, Content_Type="application/vnd.apple.mpegurl")

    for base in serve(playlist):
        for path in playlists:
            open_fails(f"{base}{path}")
    assert internal_host.untouched()


class RedirectingRtsp:
    """Answers OPTIONS, then DESCRIBE with a 302 to ``location``."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        data = b""
        with conn:
            while True:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
                while b"\r\n\r\n" in data:
                    head, _, data = data.partition(b"\r\n\r\n")
                    lines = head.decode().split("\r\n")
                    cseq = next(x.split(":")[1].strip() for x in lines if x.startswith("CSeq"))
                    if lines[0].startswith("DESCRIBE"):
                        answer = f"RTSP/1.0 302 Moved\r\nCSeq: {cseq}\r\nLocation: {self.location}"
                    else:
                        answer = f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nPublic: DESCRIBE, SETUP, PLAY"
                    conn.sendall(f"{answer}\r\n\r\n".encode())

    def close(self) -> None:
        self.sock.close()


def test_rtsp_redirect_to_the_internal_host_is_refused(internal_host: InternalHost) -> None:
    server = RedirectingRtsp(f"rtsp://{internal_host.address}/stream")
    try:
        error = open_fails(f"rtsp://127.0.0.1:{server.port}/cam")
    finally:
        server.close()
    assert "redirect" in error
    assert internal_host.untouched()


@pytest.mark.parametrize(
    "host",
    [
        "[::ffff:127.0.0.2]",  # IPv4-mapped: Linux connects it over IPv4
        "[::ffff:7f00:2]",
        "[64:ff9b::7f00:2]",  # NAT64
        "[2002:7f00:2::]",  # 6to4
        "2130706434",  # 127.0.0.2 as one decimal number
        "0x7f.0.0.2",
        "0177.0.0.2",
        "127.2",
    ],
)
def test_address_spellings_of_the_internal_host_are_refused(
    host: str, internal_host: InternalHost, api: Any
) -> None:
    for scheme in ("http", "rtsp"):
        source = f"{scheme}://{host}:{internal_host.port}/x"
        answer = api.post("/scenario/", {"source": source}, format="json")
        assert answer.status_code == 400, (source, answer.json())
        open_fails(source)
    assert internal_host.untouched()


@pytest.mark.parametrize("host", ["[::]", "0.0.0.0", "0"])
def test_unspecified_addresses_are_refused(host: str, api: Any) -> None:
    answer = api.post("/scenario/", {"source": f"http://{host}:6379/"}, format="json")
    assert answer.status_code == 400
    open_fails(f"http://{host}:6379/")


def test_a_name_that_rebinds_after_the_check_never_reaches_the_internal_host(
    internal_host: InternalHost, http_stream_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name answers an allowed address, then the internal one. Each
    connection is made to the address its own check passed, so the flip can only refuse."""
    real = socket.getaddrinfo
    answers = iter(["127.0.0.1", "127.0.0.2"] * 50)

    def rebinding(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.test":
            return real(next(answers), *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    url = http_stream_server.url("short.mp4").replace("127.0.0.1", "rebind.test")
    url = url.replace(str(http_stream_server.port), str(internal_host.port))
    for _ in range(4):
        with contextlib.suppress(SourceError):
            VideoSource(url).open()
    assert internal_host.untouched()


def test_refusals_do_not_tell_what_listens_on_a_denied_host(internal_host: InternalHost) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.2", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    listening = open_fails(f"http://127.0.0.2:{internal_host.port}/").replace(
        str(internal_host.port), "PORT"
    )
    nothing = open_fails(f"http://127.0.0.2:{closed_port}/").replace(str(closed_port), "PORT")
    assert listening == nothing
    assert internal_host.untouched()


def test_a_local_playlist_posing_as_a_video_opens_nothing(
    internal_host: InternalHost, video_root: Path
) -> None:
    (video_root / "fake.mp4").write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n"
        f"#EXTINF:1.2,\nhttp://{internal_host.address}/seg.ts\n#EXT-X-ENDLIST\n"
    )
    (video_root / "list.mp4").write_text("ffconcat version 1.0\nfile /etc/hostname\n")
    for name in ("fake.mp4", "list.mp4"):
        open_fails(name)
    assert internal_host.untouched()


def test_frames_over_the_pixel_cap_are_refused_before_decoding(settings: Settings) -> None:
    settings.MISIS_MAX_FRAME_PIXELS = 100 * 100  # short.mp4 is 320x240
    assert "MISIS_MAX_FRAME_PIXELS" in open_fails("short.mp4")
