"""What an ONVIF device answers, checked: the Media service address it advertises and the
stream URI it gives, rebuilt from checked parts before FFmpeg sees it; and the scrub of the
source's password from any text shown (sources/onvif.py resolves, this module checks)."""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from sources.base import SourceError
from sources.rtsp import FFMPEG_URL_OPTIONS

if TYPE_CHECKING:
    from sources.onvif import OnvifSource

logger = logging.getLogger(__name__)

STREAM_SCHEMES = ("rtsp", "rtsps")
MAX_STREAM_URI = 2048
# RFC 3986 pchar and "/", less "%" (only well-formed escapes are kept as they are). The query
# also leaves "?" escaped, so that FFmpeg's "last ?" is the query's start.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_ESCAPE = re.compile(r"(%[0-9A-Fa-f]{2})")
_USERINFO = re.compile(r"//[^/?#@]*@")
_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")


def valid_service_url(url: str) -> bool:
    """An http(s) URL with a host and nothing that a parser could read two ways."""
    if not url or not _printable(url):
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def _printable(text: str) -> bool:
    """No whitespace and no control, format or separator character (str.isprintable)."""
    return all(c.isprintable() and not c.isspace() for c in text)


def safe_stream_uri(given: str, src: OnvifSource) -> str:
    """The device's stream URI rebuilt from its checked parts, with the source's credentials.

    FFmpeg writes the URI into its RTSP request line: a line break in it starts a command of
    the device's choosing to whatever the host is (Redis, SMTP), and another scheme makes it
    speak another protocol (gopher://, tcp://?listen=1). urlsplit silently drops tabs and line
    breaks, so the string is checked before it is parsed, and what FFmpeg gets is rebuilt
    from the parsed parts, never the device's text. The device's own userinfo is dropped: the
    URI carries exactly the credentials the user gave. Refusals never quote the URI.
    """

    def refuse(reason: str) -> SourceError:
        # The operator may need the device's text: %r keeps its line breaks out of the log,
        # and userinfo is masked (redact() would parse, and so hide, what was refused).
        shown = _USERINFO.sub("//***@", scrub(given[:300], src))
        logger.warning("ONVIF device %s: stream URI refused, %s: %r", src.address, reason, shown)
        return SourceError(
            f"ONVIF device {src.address} gave a stream URI that is refused: {reason}"
        )

    # XML Schema collapses whitespace around an xs:anyURI; anything inside is refused below.
    uri = given.strip(" \t\r\n")
    if len(uri) > MAX_STREAM_URI:
        raise refuse(f"it is longer than {MAX_STREAM_URI} characters")
    if not _printable(uri):
        raise refuse("it holds whitespace or control characters")
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        raise refuse("it is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in STREAM_SCHEMES:
        raise refuse("only rtsp:// and rtsps:// streams are opened")
    host = _stream_host(parts.hostname or "")
    if host is None:
        raise refuse("it names no valid host")
    if port == 0:
        raise refuse("its port must be 1-65535")
    query = _requote(parts.query, _PATH_SAFE)
    if any(item.lower() in FFMPEG_URL_OPTIONS for item in query.split("&")):
        raise refuse("its query holds an FFmpeg option")
    userinfo = ""
    if src.user:
        userinfo = quote(src.user, safe="")
        if src.password:
            userinfo += ":" + quote(src.password, safe="")
        userinfo += "@"
    netloc = f"{userinfo}{host}" + (f":{port}" if port else "")
    path = _requote(parts.path, _PATH_SAFE)
    return f"{scheme}://{netloc}{path}" + (f"?{query}" if query else "")


def _stream_host(hostname: str) -> str | None:
    """The host as it goes into the URI (an IPv6 address bracketed), or None if invalid:
    an IP address in standard form or a DNS name, never a form that resolvers read as an
    address (2130706433, 127.1, 0x7f.0.0.1) or an IPv6 zone."""
    try:
        address = ipaddress.ip_address(hostname)
    except ValueError:
        address = None
    if isinstance(address, ipaddress.IPv6Address):
        return None if address.scope_id else f"[{address.compressed}]"
    if address is not None:
        return str(address)
    name = hostname.rstrip(".")
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return None
    try:
        socket.inet_aton(name)
    except OSError:
        return name
    return None  # getaddrinfo would read it as an IPv4 address in a non-standard form


def _requote(text: str, safe: str) -> str:
    """Percent-encode what is not in ``safe``, keeping well-formed %XX escapes as they are."""
    return "".join(
        piece if _ESCAPE.fullmatch(piece) else quote(piece, safe=safe)
        for piece in _ESCAPE.split(text)
    )


def scrub(text: str, src: OnvifSource) -> str:
    """Belt and braces: library texts quote URLs, and a device may echo what it was sent."""
    for secret in {src.password, quote(src.password, safe="")} - {""}:
        text = text.replace(secret, "***")
    return text
