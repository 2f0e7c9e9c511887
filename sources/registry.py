"""Which class serves which scheme: a new scheme is one new class, listed here."""

from __future__ import annotations

from urllib.parse import urlsplit

from sources.base import Source, SourceError
from sources.http import HttpSource
from sources.local import LocalFile
from sources.rtsp import OnvifCamera, RtspCamera
from sources.s3 import S3Object

CLASSES: tuple[type[Source], ...] = (LocalFile, S3Object, HttpSource, RtspCamera, OnvifCamera)
BY_SCHEME = {scheme: cls for cls in CLASSES for scheme in cls.schemes}
SCHEMES = tuple(scheme for scheme in BY_SCHEME if scheme)


def scheme_of(url: str) -> str:
    try:
        return urlsplit(url).scheme.lower()
    except ValueError:
        return ""


def source_class(url: str) -> type[Source]:
    scheme = scheme_of(url)
    try:
        return BY_SCHEME[scheme]
    except KeyError:
        raise SourceError(
            f"scheme {scheme!r} is not supported; use one of {', '.join(SCHEMES)}"
            " or a path relative to the video root"
        ) from None


def source_for(url: str) -> Source:
    """The source object for ``url``; SourceError for a scheme no class serves."""
    return source_class(url)(url)
