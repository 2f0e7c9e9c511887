"""The forbidden internal host of the hostile-source tests: a listener on 127.0.0.2 that records
every connection and every byte it receives.

127.0.0.0/8 is all loopback on Linux, so 127.0.0.2 is a second address on this machine that the
tests deny (``MISIS_SOURCE_DENY``) while the media servers on 127.0.0.1 stay allowed. A defence
holds when, after the hostile source has been tried, the listener has seen no connection at all.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

INTERNAL_HOST = "127.0.0.2"

__all__ = ["INTERNAL_HOST", "InternalHost", "internal_host"]


@dataclass
class InternalHost:
    """A TCP listener that answers nothing and keeps what it was sent."""

    host: str = INTERNAL_HOST
    port: int = 0
    connections: int = 0
    received: bytearray = field(default_factory=bytearray)
    _sock: socket.socket | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        sock.listen(16)
        self.port = sock.getsockname()[1]
        self._sock = sock
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        assert self._sock is not None
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                with self._lock:
                    self.received.extend(data)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def untouched(self) -> bool:
        with self._lock:
            return self.connections == 0 and not self.received

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()


@pytest.fixture
def internal_host(settings: pytest.FixtureRequest) -> Iterator[InternalHost]:
    """The recording listener on 127.0.0.2, with 127.0.0.2 denied to sources."""
    settings.MISIS_SOURCE_DENY = [*settings.MISIS_SOURCE_DENY, f"{INTERNAL_HOST}/32"]  # type: ignore[attr-defined]
    host = InternalHost()
    host.start()
    yield host
    host.close()
