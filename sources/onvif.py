"""ONVIF sources: ``onvif://user:pass@host[:port][/profile-token]`` resolved to the camera's RTSP
URI through the Media service, and WS-Discovery of cameras on the operator's network.

The device is the user's choice, so everything it answers is treated as hostile: its SOAP
client (sources/onvif_client.py) connects only where the host lists allow and follows no
redirect, and the stream URI it gives is rebuilt from checked parts before FFmpeg sees it.

The ONVIF client (onvif-zeep-async) is imported only when a source is resolved: importing it
calls ``logging.basicConfig`` and loads zeep, which the API process (it only validates) needs not.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit
from xml.etree import ElementTree

from sources.base import SourceError
from sources.hosts import HostRefused
from sources.redact import redact
from sources.rtsp import FFMPEG_URL_OPTIONS

if TYPE_CHECKING:
    from collections.abc import Callable

    from sources.onvif_client import GuardedCamera

logger = logging.getLogger(__name__)

DEFAULT_PORT = 80
MEDIA_NS = "http://www.onvif.org/ver10/media/wsdl"
SHAPE = "onvif://user:password@host[:port][/profile-token]"

STREAM_SCHEMES = ("rtsp", "rtsps")
MAX_STREAM_URI = 2048
# RFC 3986 pchar and "/", less "%" (only well-formed escapes are kept as they are). The query
# also leaves "?" escaped, so that FFmpeg's "last ?" is the query's start.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_ESCAPE = re.compile(r"(%[0-9A-Fa-f]{2})")
_USERINFO = re.compile(r"//[^/?#@]*@")
_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")


@dataclass(frozen=True)
class OnvifSource:
    user: str
    password: str = field(repr=False)  # never in a repr, a log line or an error text
    host: str
    port: int
    profile: str | None  # None: the first profile with a video encoder

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_onvif(source: str) -> OnvifSource:
    """Split an onvif:// source; ValueError (without the password) when it is malformed."""
    try:
        parts = urlsplit(source)
        port = parts.port
    except ValueError:
        # urlsplit's own texts may quote the netloc, and so the password.
        raise ValueError(
            f"not a valid onvif URL; expected {SHAPE} (percent-encode : / ? # @ in a password)"
        ) from None
    if parts.scheme.lower() != "onvif":
        raise ValueError(f"not an onvif URL; expected {SHAPE}")
    if not parts.hostname:
        raise ValueError(f"an onvif source needs a host: {SHAPE}")
    if port == 0:
        raise ValueError("the port of an onvif source must be 1-65535")
    if parts.query or parts.fragment:
        raise ValueError(f"an onvif source takes no query or fragment: {SHAPE}")
    if parts.password is not None and not parts.username:
        raise ValueError(f"a password needs a user name: {SHAPE}")
    segments = parts.path.split("/")[1:] if parts.path not in ("", "/") else []
    if len(segments) > 1 or (segments and not segments[0]):
        raise ValueError(f"the path of an onvif source names at most one profile token: {SHAPE}")
    return OnvifSource(
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        host=parts.hostname,
        port=port or DEFAULT_PORT,
        profile=unquote(segments[0]) if segments else None,
    )


def resolve_stream_uri(
    source: str, *, timeout: float = 10.0, check_url: Callable[[str], None] | None = None
) -> str:
    """The RTSP URI of an onvif:// source: GetProfiles, then GetStreamUri of the named profile
    (or the first profile with a video encoder).

    The URI is rebuilt from the parts of the device's answer, each checked (_safe_stream_uri):
    rtsp:// or rtsps:// only, a valid host and port, no whitespace or control characters, path
    and query re-quoted, and the source's credentials in place of any the device put there.

    ``check_url`` is called with each URL before it is used — the device service, the Media
    service address the device advertised (a hostile device could point that anywhere), then
    the stream URI — and may raise SourceError to refuse it. Independently of it, the SOAP
    client connects only to addresses that sources.hosts allows, checked when it connects, and
    follows no redirect (sources/onvif_client.py).

    Synchronous and thread-safe: each call runs its own event loop and client, so runner
    threads may resolve at once. Takes at most about ``timeout`` seconds. Raises SourceError
    with a text for the user that never contains the password.
    """
    try:
        src = parse_onvif(source)
    except ValueError as exc:
        raise SourceError(str(exc)) from None
    where = f"ONVIF device {src.address}"
    check = check_url or (lambda url: None)
    started = time.monotonic()
    try:
        check(f"http://{src.address}/onvif/device_service")
        uri = _safe_stream_uri(asyncio.run(_resolve(src, timeout, check)), src)
        check(uri)
    except SourceError as exc:
        raise SourceError(_scrub(str(exc), src)) from None
    except TimeoutError:
        raise SourceError(f"{where} did not answer within {timeout:g} s") from None
    except Exception as exc:
        raise SourceError(_scrub(_describe(exc, where, src), src)) from None
    logger.info(
        "resolved %s to %s in %.2f s", redact(source), redact(uri), time.monotonic() - started
    )
    return uri


async def _resolve(src: OnvifSource, timeout: float, check: Callable[[str], None]) -> str:
    from sources.onvif_client import guarded_camera

    camera = guarded_camera(src.host, src.port, src.user, src.password)
    try:
        async with asyncio.timeout(timeout):
            return await _stream_uri(camera, src, check)
    finally:
        await camera.close()


async def _stream_uri(camera: GuardedCamera, src: OnvifSource, check: Callable[[str], None]) -> str:
    where = f"ONVIF device {src.address}"
    await camera.update_xaddrs()
    if MEDIA_NS not in camera.xaddrs:
        raise SourceError(f"{where} offers no ONVIF Media service")
    media_xaddr = camera.xaddrs[MEDIA_NS]
    if not _valid_service_url(media_xaddr):
        raise SourceError(f"{where} advertises an invalid Media service address")
    check(media_xaddr)
    media = await camera.create_media_service()
    profiles = await media.GetProfiles() or []
    token = _choose_profile(profiles, src.profile, where)
    request = media.create_type("GetStreamUri")
    request.ProfileToken = token
    request.StreamSetup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
    answer = await media.GetStreamUri(request)
    uri = getattr(answer, "Uri", None) or ""
    if not uri.strip():
        raise SourceError(f"{where} gave no stream URI for profile {token!r}")
    return uri


def _choose_profile(profiles: list[Any], wanted: str | None, where: str) -> str:
    tokens = [p.token for p in profiles]
    if wanted is not None:
        if wanted not in tokens:
            known = ", ".join(repr(t) for t in tokens) or "none"
            raise SourceError(f"{where} has no media profile {wanted!r}; its profiles: {known}")
        return wanted
    video = [p.token for p in profiles if getattr(p, "VideoEncoderConfiguration", None)]
    if not video:
        raise SourceError(f"{where} has no media profile with a video encoder")
    return video[0]


def _valid_service_url(url: str) -> bool:
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


def _safe_stream_uri(given: str, src: OnvifSource) -> str:
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
        shown = _USERINFO.sub("//***@", _scrub(given[:300], src))
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


def _describe(exc: Exception, where: str, src: OnvifSource) -> str:
    """A user-facing text for what the client library raised."""
    import aiohttp
    import zeep.exceptions
    from onvif.exceptions import ONVIFError
    from onvif.util import is_auth_error

    from sources.onvif_client import RedirectRefused

    if isinstance(exc, HostRefused):
        # Raised before connecting, so the text says nothing of what listens there.
        return f"{where}: refused by the host policy: {exc}"
    if type(exc) is LookupError:  # sources.hosts: the name does not resolve (not a KeyError)
        return f"{where}: {exc}"
    if isinstance(exc, RedirectRefused):
        return f"{where} answered with a redirect ({exc}), which is not followed"
    refused = f"{where} refused the credentials of user {src.user!r}"
    if isinstance(exc, zeep.exceptions.Fault):
        if is_auth_error(exc):
            return refused
        if exc.code is None:  # zeep's "Unknown fault": an error page, not a SOAP fault
            return f"{where} does not answer like an ONVIF device (no SOAP)"
        codes = ", ".join(getattr(code, "localname", str(code)) for code in exc.subcodes or [])
        reason = (exc.message or "no reason given")[:200]
        return f"{where} answered with a SOAP fault: {reason}" + (f" ({codes})" if codes else "")
    if isinstance(exc, zeep.exceptions.TransportError):
        if exc.status_code in (401, 403):
            return refused
        return f"{where} answered HTTP {exc.status_code}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or str(exc.os_error)
        return f"cannot reach {where}: {reason}"
    if isinstance(exc, aiohttp.ClientError | OSError):
        return f"cannot talk to {where}: {exc or type(exc).__name__}"
    if isinstance(exc, zeep.exceptions.XMLSyntaxError | zeep.exceptions.XMLParseError):
        return f"{where} does not answer like an ONVIF device (no SOAP)"
    if isinstance(exc, ONVIFError):
        return f"{where}: {exc}"
    logger.warning("unexpected ONVIF error from %s: %r", where, _scrub(repr(exc), src))
    return f"ONVIF request to {where} failed: {type(exc).__name__}"


def _scrub(text: str, src: OnvifSource) -> str:
    """Belt and braces: library texts quote URLs, and a device may echo what it was sent."""
    for secret in {src.password, quote(src.password, safe="")} - {""}:
        text = text.replace(secret, "***")
    return text


# --- WS-Discovery ---------------------------------------------------------------------------

WS_DISCOVERY_ADDRESS = "239.255.255.250"
WS_DISCOVERY_PORT = 3702
_WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
_WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
_PROBE = """<?xml version="1.0" encoding="UTF-8"?>
<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope" xmlns:w="{wsa}" xmlns:d="{wsd}"
 xmlns:dn="http://www.onvif.org/ver10/network/wsdl">
<e:Header><w:MessageID>{message_id}</w:MessageID>
<w:To e:mustUnderstand="true">urn:schemas-xmlsoap-org:ws:2005:04:discovery</w:To>
<w:Action e:mustUnderstand="true">{wsd}/Probe</w:Action></e:Header>
<e:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></e:Body>
</e:Envelope>"""


@dataclass(frozen=True)
class DiscoveredCamera:
    endpoint: str  # the device's stable id, usually urn:uuid:...
    xaddrs: tuple[str, ...]  # device service URLs
    scopes: tuple[str, ...]

    def scope(self, kind: str) -> str | None:
        """A scope value such as name or hardware (onvif://www.onvif.org/name/Cam%201)."""
        prefix = f"onvif://www.onvif.org/{kind}/"
        found = next((s[len(prefix) :] for s in self.scopes if s.startswith(prefix)), None)
        return unquote(found) if found is not None else None

    @property
    def source(self) -> str | None:
        """``onvif://host:port`` of the first http XAddr (IPv4 first); add user:password@."""
        candidates = []
        for xaddr in self.xaddrs:
            try:
                parts = urlsplit(xaddr)
                port = parts.port or (443 if parts.scheme == "https" else DEFAULT_PORT)
            except ValueError:
                continue
            if parts.scheme in ("http", "https") and parts.hostname:
                candidates.append(OnvifSource("", "", parts.hostname, port, None))
        candidates.sort(key=lambda c: ":" in c.host)  # a stable sort: IPv4 before IPv6
        return f"onvif://{candidates[0].address}" if candidates else None


def discover(
    timeout: float = 3.0,
    *,
    address: str = WS_DISCOVERY_ADDRESS,
    port: int = WS_DISCOVERY_PORT,
    interface: str | None = None,
) -> list[DiscoveredCamera]:
    """Send one WS-Discovery Probe for NetworkVideoTransmitters and collect the ProbeMatches
    that arrive within ``timeout`` seconds, one entry per device."""
    message_id = f"urn:uuid:{uuid.uuid4()}"
    probe = _PROBE.format(wsa=_WSA, wsd=_WSD, message_id=message_id).encode()
    found: dict[str, DiscoveredCamera] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        # Cameras answer by unicast to the probe's source port; TTL 1 keeps the probe on
        # the local link, as WS-Discovery requires.
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        if interface:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface))
        sock.sendto(probe, (address, port))
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data, _sender = sock.recvfrom(65535)
            except TimeoutError:
                break
            except ConnectionRefusedError:  # an ICMP answer to a unicast probe
                continue
            for camera in _probe_matches(data, message_id):
                found.setdefault(camera.endpoint, camera)
    return list(found.values())


def _probe_matches(data: bytes, message_id: str) -> list[DiscoveredCamera]:
    try:
        envelope = ElementTree.fromstring(data)
    except ElementTree.ParseError:
        logger.debug("ignoring a WS-Discovery answer that is not XML")
        return []
    relates_to = envelope.findtext(f".//{{{_WSA}}}RelatesTo")
    if relates_to is not None and relates_to.strip() != message_id:
        return []  # an answer to somebody else's probe
    cameras = []
    for match in envelope.iter(f"{{{_WSD}}}ProbeMatch"):
        endpoint = (match.findtext(f"{{{_WSA}}}EndpointReference/{{{_WSA}}}Address") or "").strip()
        xaddrs = tuple((match.findtext(f"{{{_WSD}}}XAddrs") or "").split())
        scopes = tuple((match.findtext(f"{{{_WSD}}}Scopes") or "").split())
        if endpoint or xaddrs:
            cameras.append(DiscoveredCamera(endpoint or xaddrs[0], xaddrs, scopes))
    return cameras
