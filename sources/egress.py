"""Requests the server itself sends to a host a user named (webhooks), checked when sent.

The host is resolved once and every address checked (``allowed_addresses``); the connection
goes to one of those very addresses (TLS with the name for SNI and certificate checks), and a
redirect is an answer like any other, never followed: no second resolution can differ from the
one that was checked.
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from sources.base import SourceError
from sources.policy import checked_addresses

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes  # the first KiB, for the operator's log


def post_checked(url: str, body: bytes, headers: dict[str, str], *, timeout: float) -> Answer:
    """POST ``body`` to ``url``; SourceError when refused or unreachable, else the answer."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SourceError("only http(s) URLs")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    sock = None
    for address in checked_addresses(parts.hostname):
        try:
            sock = socket.create_connection((address, port), timeout=timeout)
            break
        except OSError as exc:
            logger.info("cannot connect to %s:%d (%s): %s", parts.hostname, port, address, exc)
    if sock is None:
        raise SourceError(f"cannot connect to {parts.hostname}:{port}")
    try:
        if parts.scheme == "https":
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=parts.hostname)
        conn = http.client.HTTPConnection(parts.hostname, port, timeout=timeout)
        conn.sock = sock  # connected already, to the checked address
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("POST", path, body=body, headers={**headers, "Connection": "close"})
        response = conn.getresponse()
        return Answer(response.status, response.read(1024))
    except (OSError, http.client.HTTPException) as exc:
        raise SourceError(f"{parts.hostname}:{port} did not answer: {type(exc).__name__}") from None
    finally:
        sock.close()
