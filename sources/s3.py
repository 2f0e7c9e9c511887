"""``s3://bucket/key`` objects in the configured store, read through a presigned URL."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from sources.base import FILE_FORMATS, Source, SourceError, Target
from sources.egress_proxy import EgressProxy
from sources.http import proxied


class S3Object(Source):
    schemes = ("s3",)
    reopens_when_cut = True

    @classmethod
    def validate(cls, url: str) -> None:
        # sources.storage is imported when used: it imports this package's SourceError.
        from sources.storage import NOT_CONFIGURED, parse_s3, s3_configured

        parse_s3(url)
        if not s3_configured():
            raise SourceError(NOT_CONFIGURED)

    def target(self, *, open_timeout: float, read_timeout: float) -> Target:
        from sources.storage import presigned_url

        url = presigned_url(self.url)
        endpoint = urlsplit(url).hostname

        def endpoint_only(host: str) -> list[str]:
            # The store is the operator's (AWS_S3_ENDPOINT_URL), so the source host lists do
            # not apply to it; nothing but the store is reached.
            if host != endpoint:
                raise SourceError("an s3 source may not open other hosts")
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
            return [str(info[4][0]) for info in infos]

        proxy = EgressProxy(resolve=endpoint_only, open_timeout=open_timeout)
        return proxied(url, proxy, FILE_FORMATS)
