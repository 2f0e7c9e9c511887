"""Small helpers for the child processes of the suite and the benches."""

from __future__ import annotations

import contextlib
import ctypes
import select
import signal
import socket
from typing import IO

LIBC = ctypes.CDLL(None, use_errno=True)


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now (another process may take it before it is used)."""
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Ports free now, all different (held open together while chosen)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def die_with_parent() -> None:
    """``preexec_fn`` of a child: the kernel SIGKILLs it when its parent dies, so that a
    timed-out or killed test run (or bench) leaves no server behind."""
    LIBC.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def read_line(stream: IO[str], timeout: float) -> str:
    """The next line of a child's stdout, or "" after the timeout or at its end."""
    ready, _, _ = select.select([stream], [], [], timeout)
    return stream.readline().strip() if ready else ""
