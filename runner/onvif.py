"""ONVIF sources: ``onvif://user:pass@host[:port][/profile-token]`` resolved to the camera's RTSP
URI through the Media service, and WS-Discovery of cameras on the operator's network.

The ONVIF client (onvif-zeep-async) is imported only when a source is resolved: importing it
calls ``logging.basicConfig`` and loads zeep, which the API process (it only validates) needs not.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit
from xml.etree import ElementTree

from runner.redact import redact
from sources.base import SourceError

if TYPE_CHECKING:
    from collections.abc import Callable

    from onvif import ONVIFCamera

logger = logging.getLogger(__name__)

DEFAULT_PORT = 80
MEDIA_NS = "http://www.onvif.org/ver10/media/wsdl"
SHAPE = "onvif://user:password@host[:port][/profile-token]"

# ONVIFCamera() pops http_proxy/https_proxy from os.environ, for the whole process; aiohttp
# ignores them anyway (trust_env=False), so put them back for boto3 and friends.
_PROXY_VARS = ("http_proxy", "https_proxy")
_env_lock = threading.Lock()


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


def validate_onvif_source(source: str) -> None:
    """Raise ValueError for a malformed onvif:// source (for the API serializer)."""
    parse_onvif(source)


def resolve_stream_uri(
    source: str, *, timeout: float = 10.0, check_url: Callable[[str], None] | None = None
) -> str:
    """The RTSP URI of an onvif:// source: GetProfiles, then GetStreamUri of the named profile
    (or the first profile with a video encoder); the URI carries the source's credentials
    unless it has its own.

    ``check_url`` is called with each service URL before it is contacted — the device service,
    then the Media service address the device advertised (a hostile device could point that
    anywhere) — and may raise SourceError to refuse it; the stream URI is the caller's to check.

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
        uri = asyncio.run(_resolve(src, timeout, check))
    except SourceError as exc:
        raise SourceError(_scrub(str(exc), src)) from None
    except TimeoutError:
        raise SourceError(f"{where} did not answer within {timeout:g} s") from None
    except Exception as exc:
        raise SourceError(_scrub(_describe(exc, where, src), src)) from None
    uri = _with_credentials(uri, src)
    logger.info(
        "resolved %s to %s in %.2f s", redact(source), redact(uri), time.monotonic() - started
    )
    return uri


async def _resolve(src: OnvifSource, timeout: float, check: Callable[[str], None]) -> str:
    camera = _camera(src)
    try:
        async with asyncio.timeout(timeout):
            return await _stream_uri(camera, src, check)
    finally:
        await camera.close()


def _camera(src: OnvifSource) -> ONVIFCamera:
    from onvif import ONVIFCamera

    with _env_lock:
        saved = {name: os.environ[name] for name in _PROXY_VARS if name in os.environ}
        try:
            camera = ONVIFCamera(
                src.host,
                src.port,
                # Not None: zeep cannot sign a token without a user; a camera that allows
                # anonymous access ignores an empty one.
                src.user,
                src.password,
                # The bundled WSDLs are read from the package; zeep's SQLite cache is for remote
                # documents, which are never fetched, and its shared asyncio.Lock would be bound
                # to the first thread's event loop.
                no_cache=True,
                # Cameras reject WS-Security timestamps off their own clock: GetSystemDateAndTime
                # first, and sign every request with the camera's time.
                adjust_time=True,
            )
        finally:
            os.environ.update(saved)
    return camera


async def _stream_uri(camera: ONVIFCamera, src: OnvifSource, check: Callable[[str], None]) -> str:
    where = f"ONVIF device {src.address}"
    await camera.update_xaddrs()
    if MEDIA_NS not in camera.xaddrs:
        raise SourceError(f"{where} offers no ONVIF Media service")
    check(camera.xaddrs[MEDIA_NS])
    media = await camera.create_media_service()
    profiles = await media.GetProfiles() or []
    token = _choose_profile(profiles, src.profile, where)
    request = media.create_type("GetStreamUri")
    request.ProfileToken = token
    request.StreamSetup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
    answer = await media.GetStreamUri(request)
    uri = (getattr(answer, "Uri", None) or "").strip()
    if not uri:
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


def _with_credentials(uri: str, src: OnvifSource) -> str:
    """The URI with the source's user and password, unless it has a user of its own."""
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise SourceError(f"ONVIF device {src.address} gave an invalid stream URI") from None
    if not parts.scheme or not parts.hostname:
        raise SourceError(f"ONVIF device {src.address} gave an invalid stream URI")
    if not src.user or "@" in parts.netloc:
        return uri
    userinfo = quote(src.user, safe="")
    if src.password:
        userinfo += ":" + quote(src.password, safe="")
    return parts._replace(netloc=f"{userinfo}@{parts.netloc}").geturl()


def _describe(exc: Exception, where: str, src: OnvifSource) -> str:
    """A user-facing text for what the client library raised."""
    import aiohttp
    import zeep.exceptions
    from onvif.exceptions import ONVIFError
    from onvif.util import is_auth_error

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
