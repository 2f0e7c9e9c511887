"""``http(s)://`` sources: a file (progressive download, HLS VOD) or a live stream (MJPEG, live
HLS), decided when opened: a source that reports a duration is a file."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings

from sources.base import FILE_FORMATS, Source, SourceError, Target
from sources.egress_proxy import EgressProxy
from sources.policy import check_host_now, checked_addresses, require_clean

HTTP_FORMATS = f"{FILE_FORMATS},hls,mpjpeg"
# What FFmpeg may open for an HTTP source: every http(s) open, nested ones included, goes
# through the egress proxy; no file:, no other protocol a playlist could name.
HTTP_PROTOCOLS = "http,https,tls,tcp,httpproxy,crypto"


def proxied(url: str, proxy: EgressProxy, formats: str) -> Target:
    return Target(
        url=url,
        options={
            "http_proxy": proxy.url,
            "protocol_whitelist": HTTP_PROTOCOLS,
            "format_whitelist": formats,
            # One request per connection, each one checked by the proxy (hls would otherwise
            # send several requests down one connection).
            "http_persistent": "0",
            "multiple_requests": "0",
        },
        close=proxy.close,
        refusal=lambda: proxy.refusal,
    )


def host_of(url: str) -> str:
    require_clean(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError as exc:
        raise SourceError(f"not a valid URL: {exc}") from None
    if not parts.hostname:
        raise SourceError(f"{parts.scheme} source needs a host")
    return parts.hostname


class HttpSource(Source):
    schemes = ("http", "https")
    live = None
    reopens_when_cut = True

    @classmethod
    def validate(cls, url: str) -> None:
        check_host_now(host_of(url))

    def target(self, *, open_timeout: float, read_timeout: float) -> Target:
        host_of(self.url)
        proxy = EgressProxy(resolve=checked_addresses, open_timeout=open_timeout)
        return proxied(self.url, proxy, HTTP_FORMATS)

    def read_timeout(self, default: float) -> float:
        # HLS hands out whole segments (often 6 s): a read at the live edge waits for the
        # next one, so its timeout must outlast a segment or every segment would be a stall.
        if urlsplit(self.url).path.lower().endswith(".m3u8"):
            return max(default, settings.MISIS_HLS_READ_TIMEOUT)
        return default
