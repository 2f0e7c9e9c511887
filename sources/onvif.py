"""ONVIF sources: ``onvif://user:pass@host[:port][/profile-token]`` resolved to the camera's RTSP
URI through the Media service (WS-Discovery of cameras: sources/onvif_discovery.py).

The device is the user's choice, so everything it answers is treated as hostile: its SOAP
client (sources/onvif_client.py) connects only where the host lists allow and follows no
redirect, and the stream URI it gives is rebuilt from checked parts before FFmpeg sees it
(sources/onvif_uri.py).

The ONVIF client (onvif-zeep-async) is imported only when a source is resolved: importing it
calls ``logging.basicConfig`` and loads zeep, which the API process (it only validates) needs not.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from sources.base import SourceError
from sources.hosts import HostRefused
from sources.onvif_uri import safe_stream_uri, scrub, valid_service_url
from sources.redact import redact

if TYPE_CHECKING:
    from collections.abc import Callable

    from sources.onvif_client import GuardedCamera

logger = logging.getLogger(__name__)

DEFAULT_PORT = 80
MEDIA_NS = "http://www.onvif.org/ver10/media/wsdl"
SHAPE = "onvif://user:password@host[:port][/profile-token]"


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

    The URI is rebuilt from the parts of the device's answer, each checked (sources/onvif_uri.py):
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
        uri = safe_stream_uri(asyncio.run(_resolve(src, timeout, check)), src)
        check(uri)
    except SourceError as exc:
        raise SourceError(scrub(str(exc), src)) from None
    except TimeoutError:
        raise SourceError(f"{where} did not answer within {timeout:g} s") from None
    except Exception as exc:
        raise SourceError(scrub(_describe(exc, where, src), src)) from None
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
    if not valid_service_url(media_xaddr):
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
    tokens = [str(p.token) for p in profiles]
    if wanted is not None:
        if wanted not in tokens:
            known = ", ".join(repr(t) for t in tokens) or "none"
            raise SourceError(f"{where} has no media profile {wanted!r}; its profiles: {known}")
        return wanted
    video = [str(p.token) for p in profiles if getattr(p, "VideoEncoderConfiguration", None)]
    if not video:
        raise SourceError(f"{where} has no media profile with a video encoder")
    return video[0]


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
    logger.warning("unexpected ONVIF error from %s: %r", where, scrub(repr(exc), src))
    return f"ONVIF request to {where} failed: {type(exc).__name__}"
