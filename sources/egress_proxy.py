"""An HTTP proxy on loopback through which the decoder's HTTP(S) reaches the network.

FFmpeg's HTTP client resolves names again after any check of ours, follows redirects to any
host, and lets an HLS playlist send it to any host for segments and keys. Handed this proxy
(FFmpeg's per-open ``http_proxy`` option, inherited by every nested open), FFmpeg makes no
connection of its own: each request, the first one, each redirect hop, each segment and each
key, names its host to the proxy, which resolves it once, checks the addresses against the
host lists, and connects to one of those very addresses, or answers 403 without connecting.
``CONNECT`` (https) is tunnelled the same way. One request per connection: no request can
ride a connection that was checked for another host.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from contextlib import suppress
from urllib.parse import urlsplit

from sources.base import SourceError
from sources.loopback import LoopbackServer

logger = logging.getLogger(__name__)

MAX_HEADER = 64 * 1024
BUFFER = 128 * 1024
# host -> the addresses that may be connected to (raises SourceError when none may)
Resolver = Callable[[str], list[str]]


class EgressProxy(LoopbackServer):
    """One proxy per open of a source; ``close()`` ends it and every connection it holds."""

    thread_name = "egress-proxy"
    # Small buffers: the proxy passes data on as FFmpeg reads it rather than holding
    # megabytes of a file (memory per camera; a dropped connection shows as one).
    client_send_buffer = BUFFER

    def __init__(self, *, resolve: Resolver, open_timeout: float) -> None:
        self.resolve = resolve
        self.open_timeout = open_timeout
        self.refusal: str | None = None  # the first refusal, for the error the user sees
        super().__init__(backlog=16)
        self.url = f"http://127.0.0.1:{self.local_port}"

    def _refuse(self, client: socket.socket, reason: str) -> None:
        self.refusal = self.refusal or reason
        logger.warning("egress proxy refused: %s", reason)
        with suppress(OSError):
            client.sendall(
                b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            client.settimeout(self.open_timeout)
            head = _read_head(client)
            if head is None:
                return
            header, rest = head
            line, _, fields = header.partition(b"\r\n")
            try:
                method, target, version = line.decode("ascii").split(" ")
            except (UnicodeDecodeError, ValueError):
                return self._refuse(client, "a malformed request")
            if method == "CONNECT":
                host, _, port_text = target.rpartition(":")
                host = host.strip("[]")
                prefix = b""
            else:
                parts = urlsplit(target)
                if parts.scheme != "http" or not parts.hostname:
                    return self._refuse(client, "only http(s) may be fetched")
                host, port_text = parts.hostname, str(parts.port or 80)
                path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                # Origin form for the server; "Connection: close": one request per connection.
                kept = [
                    f for f in fields.split(b"\r\n")
                    if f and not f.lower().startswith((b"connection:", b"proxy-", b"keep-alive:"))
                ]  # fmt: skip
                prefix = b"\r\n".join(
                    [f"{method} {path} {version}".encode(), *kept, b"Connection: close", b"", b""]
                )
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                return self._refuse(client, "a malformed port")
            port = int(port_text)
            try:
                addresses = self.resolve(host)
            except SourceError as exc:
                return self._refuse(client, str(exc))
            upstream = _connect(addresses, port, self.open_timeout)
            if upstream is None:
                # One text for refused, unreachable and timed out: no port scanner.
                self.refusal = self.refusal or f"cannot connect to {host}:{port}"
                with suppress(OSError):
                    client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                return
            self._track(upstream)
            if method == "CONNECT":
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            upstream.sendall(prefix + rest)
            _pump(client, upstream, self._closed)
        except OSError:
            return
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    with suppress(OSError):
                        sock.close()


def _read_head(sock: socket.socket) -> tuple[bytes, bytes] | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk or len(data) > MAX_HEADER:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _connect(addresses: list[str], port: int, timeout: float) -> socket.socket | None:
    for address in addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
        sock.settimeout(timeout)
        try:
            sock.connect((address, port))
        except OSError as exc:
            sock.close()
            logger.info("cannot connect to %s:%d: %s", address, port, exc)
            continue
        sock.settimeout(None)
        return sock
    return None


def _pump(a: socket.socket, b: socket.socket, closed: threading.Event) -> None:
    """Bytes both ways until either side closes (the other direction in its own thread)."""
    a.settimeout(None)

    def copy(src: socket.socket, dst: socket.socket) -> None:
        try:
            while not closed.is_set():
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    other = threading.Thread(target=copy, args=(b, a), name="egress-proxy-down", daemon=True)
    other.start()
    copy(a, b)
    other.join()
