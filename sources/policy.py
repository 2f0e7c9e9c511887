"""The host lists as the sources apply them: refusals become SourceError with a user text."""

from __future__ import annotations

import logging
import re

from sources.base import SourceError
from sources.hosts import HostRefused, allowed_addresses

logger = logging.getLogger(__name__)

# Control characters and white space: FFmpeg and HTTP/RTSP servers would read them as the end
# of a request line (CRLF injection); no URL we open may hold one anywhere.
UNSAFE = re.compile(r"[\x00-\x20\x7f-\x9f]")


def require_clean(url: str) -> None:
    if UNSAFE.search(url):
        raise SourceError("the URL contains control characters or white space")


def checked_addresses(host: str) -> list[str]:
    """The addresses of ``host`` that may be connected to, resolved once, all checked."""
    try:
        return [str(address) for address in allowed_addresses(host)]
    except HostRefused as exc:
        raise SourceError(str(exc)) from None
    except LookupError:
        raise SourceError(f"cannot resolve host {host}") from None


def check_host_now(host: str) -> None:
    """Create-time check: a refused host is an error; a name that does not resolve now may
    resolve when the runner opens it, so it passes."""
    try:
        allowed_addresses(host)
    except HostRefused as exc:
        raise SourceError(str(exc)) from None
    except LookupError:
        pass
