"""RTSP through a relay on loopback, so that FFmpeg reaches the camera and nothing else.

FFmpeg's RTSP client resolves the camera's name again after our check, and follows an RTSP
3xx redirect to any host without asking (it has no option to stop either). So FFmpeg is handed
``rtsp://127.0.0.1:<relay port>/<path>`` instead: the relay connects to the address that was
checked (TLS for ``rtsps``, like FFmpeg: certificates unverified), and passes bytes both ways,
reading the camera's side as RTSP messages and interleaved frames. A redirect answer ends the
session (``refusal`` says why) instead of reaching FFmpeg. RTP runs interleaved over the same
TCP connection (``rtsp_transport=tcp``): over UDP the media would not pass the relay.
"""

from __future__ import annotations

import logging
import selectors
import socket
import ssl
from contextlib import suppress

from sources.loopback import LoopbackServer

logger = logging.getLogger(__name__)

MAX_HEADER = 64 * 1024
MAX_BODY = 1024 * 1024  # an SDP is a few KiB


class RtspRelay(LoopbackServer):
    """One relay per open of a camera; ``close()`` ends it and every connection it holds."""

    thread_name = "rtsp-relay"

    def __init__(
        self, *, address: str, port: int, server_name: str, tls: bool, open_timeout: float
    ) -> None:
        self.address = address
        self.port = port
        self.server_name = server_name
        self.tls = tls
        self.open_timeout = open_timeout
        self.refusal: str | None = None
        super().__init__(backlog=4)

    def _connect(self) -> socket.socket | None:
        try:
            upstream = socket.create_connection((self.address, self.port), self.open_timeout)
            if self.tls:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                upstream = context.wrap_socket(upstream, server_hostname=self.server_name)
        except OSError as exc:
            logger.info("rtsp relay: cannot connect to %s:%d: %s", self.address, self.port, exc)
            self.refusal = self.refusal or f"cannot connect to {self.server_name}:{self.port}"
            return None
        upstream.settimeout(None)
        self._track(upstream)
        return upstream

    def _serve(self, client: socket.socket) -> None:
        upstream = self._connect()
        if upstream is None:
            client.close()
            return
        parser = _ServerStream()
        selector = selectors.DefaultSelector()
        selector.register(client, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, client)
        try:
            while not self._closed.is_set():
                # TLS may hold decrypted bytes that select() cannot see.
                pending = upstream.pending() if isinstance(upstream, ssl.SSLSocket) else 0
                events = (
                    [(selector.get_key(upstream), selectors.EVENT_READ)]
                    if pending
                    else selector.select(timeout=0.5)
                )
                for key, _ in events:
                    sock: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is upstream:
                        data = parser.feed(data)
                        if parser.refusal:
                            self.refusal = self.refusal or parser.refusal
                            logger.warning("rtsp relay: %s", parser.refusal)
                            return
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            selector.close()
            for sock in (client, upstream):
                with suppress(OSError):
                    sock.close()


class _ServerStream:
    """Splits what the camera sends into RTSP messages and ``$``-framed interleaved data.

    Only whole units are passed on, so a redirect is caught before any of it reaches FFmpeg.
    """

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.refusal: str | None = None

    def feed(self, data: bytes) -> bytes:
        self.buffer.extend(data)
        out = bytearray()
        while self.buffer:
            if self.buffer[0] == 0x24:  # "$", channel, 16-bit length, payload
                if len(self.buffer) < 4:
                    break
                size = 4 + int.from_bytes(self.buffer[2:4], "big")
                if len(self.buffer) < size:
                    break
            else:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.buffer) > MAX_HEADER:
                        self.refusal = "the camera sent an RTSP header over 64 KiB"
                        return b""
                    break
                head = bytes(self.buffer[:end]).decode("latin-1")
                status = head.split("\r\n", 1)[0].split(" ")
                if status[0].startswith("RTSP/") and len(status) > 1 and status[1][:1] == "3":
                    self.refusal = (
                        f"the camera answered with a redirect (RTSP {status[1]}), which sources"
                        " may not follow"
                    )
                    return b""
                body = _content_length(head)
                if body > MAX_BODY:
                    self.refusal = "the camera sent an RTSP body over 1 MiB"
                    return b""
                size = end + 4 + body
                if len(self.buffer) < size:
                    break
            out.extend(self.buffer[:size])
            del self.buffer[:size]
        return bytes(out)


def _content_length(head: str) -> int:
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length" and value.strip().isdigit():
            return int(value.strip())
    return 0
