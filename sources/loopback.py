"""A server on 127.0.0.1 for one open of a source: the egress proxy and the RTSP relay.

Each connection is served in its own thread; ``close()`` ends the listener, its accepting
thread and every socket it holds, so a reader blocked on one returns at once.
"""

from __future__ import annotations

import socket
import threading
from contextlib import suppress


class LoopbackServer:
    """Subclasses set their own attributes first, then call ``super().__init__()``, which
    starts accepting, and implement ``_serve(client)``."""

    thread_name = "loopback"
    client_send_buffer: int | None = None  # SO_SNDBUF of accepted sockets, when set

    def __init__(self, *, backlog: int) -> None:
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=backlog)
        self.local_port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept, name=self.thread_name, daemon=True)
        self._acceptor.start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.client_send_buffer:
                client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.client_send_buffer)
            self._track(client)
            threading.Thread(
                target=self._serve, args=(client,), name=f"{self.thread_name}-conn", daemon=True
            ).start()

    def _serve(self, client: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._closed.set()
        # On Linux, closing a socket does not wake a thread blocked in accept() on it; shutting
        # it down does. Without this each open of a source left a thread behind for good.
        with suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        with suppress(OSError):
            self._listener.close()
        if self._acceptor is not threading.current_thread():
            self._acceptor.join(timeout=1.0)
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with suppress(OSError):
                sock.close()
