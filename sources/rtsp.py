"""``rtsp(s)://`` cameras, and ``onvif://`` cameras resolved to their RTSP URI on every open."""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit

from sources.base import Source, SourceError, Target
from sources.http import host_of
from sources.policy import check_host_now, checked_addresses, require_clean
from sources.rtsp_relay import RtspRelay

DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322}
# Bare words that FFmpeg reads in an RTSP URI's query as its own options (rtsp.c, after the
# last "?"): "udp" or "multicast" would move the media off the relayed TCP connection and let
# the RTSP server name the peer that FFmpeg sends UDP to.
FFMPEG_URL_OPTIONS = frozenset({"udp", "multicast", "tcp", "http", "https", "filter_src"})


def refuse_ffmpeg_options(query: str) -> None:
    words = {word.lower() for part in query.split("&") for word in part.split("=", 1)[:1]}
    if words & FFMPEG_URL_OPTIONS:
        raise SourceError(
            "the query of an RTSP URL may not hold FFmpeg's own options"
            f" ({', '.join(sorted(FFMPEG_URL_OPTIONS))})"
        )


# What survives in a path or query when the URL is rebuilt (already-encoded %XX stays as is).
PATH_SAFE = "/:@!$&'()*+,;=-._~%"


class RtspCamera(Source):
    schemes = ("rtsp", "rtsps")
    live = True

    @classmethod
    def validate(cls, url: str) -> None:
        check_host_now(host_of(url))
        refuse_ffmpeg_options(urlsplit(url).query)

    def target(self, *, open_timeout: float, read_timeout: float) -> Target:
        require_clean(self.url)
        parts = urlsplit(self.url)
        scheme = parts.scheme.lower()
        if scheme not in self.schemes:
            raise SourceError(f"refused to open a {scheme or 'schemeless'} URL as a camera")
        host = host_of(self.url)
        refuse_ffmpeg_options(parts.query)
        port = parts.port or DEFAULT_PORTS[scheme]
        address = checked_addresses(host)[0]
        relay = RtspRelay(
            address=address,
            port=port,
            server_name=host,
            tls=scheme == "rtsps",
            open_timeout=open_timeout,
        )
        # Rebuilt from its parsed parts: FFmpeg gets no byte the camera's owner chose freely.
        userinfo = ""
        if parts.username is not None:
            userinfo = quote(unquote(parts.username), safe="")
            if parts.password is not None:
                userinfo += ":" + quote(unquote(parts.password), safe="")
            userinfo += "@"
        path = quote(parts.path or "/", safe=PATH_SAFE)
        query = f"?{quote(parts.query, safe=PATH_SAFE + '?')}" if parts.query else ""
        return Target(
            url=f"rtsp://{userinfo}127.0.0.1:{relay.local_port}{path}{query}",
            format="rtsp",
            # Interleaved over the relayed TCP connection; FFmpeg may open nothing else.
            options={"rtsp_transport": "tcp", "protocol_whitelist": "rtsp,tcp"},
            close=relay.close,
            refusal=lambda: relay.refusal,
        )


class OnvifCamera(Source):
    schemes = ("onvif",)
    live = True

    @classmethod
    def validate(cls, url: str) -> None:
        from sources.onvif import parse_onvif

        require_clean(url)
        try:
            src = parse_onvif(url)
        except ValueError as exc:
            raise SourceError(str(exc)) from None
        check_host_now(src.host)

    def target(self, *, open_timeout: float, read_timeout: float) -> Target:
        from sources.onvif import resolve_stream_uri

        def check(url: str) -> None:
            checked_addresses(host_of(url))

        # The device and the Media service it names are checked before they are asked; the
        # stream URI it answers is checked and rebuilt like any camera URL.
        uri = resolve_stream_uri(self.url, timeout=open_timeout, check_url=check)
        return RtspCamera(uri).target(open_timeout=open_timeout, read_timeout=read_timeout)


__all__ = ["OnvifCamera", "RtspCamera"]
