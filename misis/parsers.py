"""The API's JSON parser: bounded in size and nesting depth before the body is decoded.

DRF's own JSONParser reads the whole stream, however long, and hands it to ``json.load``,
which recurses once per nesting level: ``"[" * 100000`` ends in RecursionError (a 500). Here
the Content-Length is checked before the body is parsed or kept (a refused body is only read
to be thrown away, up to a bound, so that the client gets its 413), the read itself stops one
byte past the limit (a Content-Length that lies is no way around it), and the nesting depth is
counted without recursion before ``json.loads`` sees the text.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from itertools import accumulate
from typing import IO, Any

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import BaseParser, JSONParser
from rest_framework.renderers import JSONRenderer

_CHUNK = 64 * 1024
# A body refused from its Content-Length is read and thrown away, up to this size, before the
# 413 goes out: gunicorn closes a connection whose body the app left unread, and a client that
# writes its whole body before reading (most do, without Expect: 100-continue) would see a
# broken pipe instead of the answer. Nothing is kept; a bigger claim is simply dropped.
_DISCARD_MAX = 32 * 1024 * 1024
# A JSON string, escapes included; the closing quote is optional so that an unterminated
# string ends the match at the end of the text instead of backtracking (linear either way).
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"?', re.S)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_DELTA = [0] * 256
_DELTA[ord("[")] = _DELTA[ord("{")] = 1
_DELTA[ord("]")] = _DELTA[ord("}")] = -1


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "request body too large"
    default_code = "payload_too_large"


def json_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in ``raw``, brackets inside strings aside.

    Linear and recursion-free: strings are cut out by one regex pass, the remaining brackets
    summed by C-level iteration. On malformed text the count is approximate, and the parser
    refuses that text anyway.
    """
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKET)
    return max(accumulate(map(_DELTA.__getitem__, brackets)), default=0)


def _content_length(parser_context: Mapping[str, Any]) -> int | None:
    request = parser_context.get("request")
    meta = getattr(request, "META", {})
    try:
        return int(meta.get("CONTENT_LENGTH") or meta.get("HTTP_CONTENT_LENGTH") or 0)
    except (TypeError, ValueError):
        return None


def _discard(stream: IO[bytes], length: int) -> None:
    left = length
    while left > 0:
        chunk = stream.read(min(_CHUNK, left))
        if not chunk:
            return
        left -= len(chunk)


def read_bounded(stream: IO[bytes], limit: int) -> bytes:
    """At most ``limit`` bytes of ``stream``, or PayloadTooLarge; never reads past limit + 1."""
    buf = bytearray()
    while len(buf) <= limit:
        chunk = stream.read(min(_CHUNK, limit + 1 - len(buf)))
        if not chunk:
            break
        buf += chunk
    if len(buf) > limit:
        raise PayloadTooLarge(f"the JSON body is larger than {limit} bytes")
    return bytes(buf)


class BoundedJSONParser(BaseParser):
    """JSONParser with MISIS_JSON_MAX_BYTES (413) and MISIS_JSON_MAX_DEPTH (400).

    Not a JSONParser subclass on purpose: DRF hands a JSONParser ``request.body``, which reads
    the whole body first (and raises RequestDataTooBig, a 400, past Django's own limit); a
    plain parser gets the stream itself.
    """

    media_type = "application/json"
    renderer_class = JSONRenderer

    def parse(
        self,
        stream: IO[bytes],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        parser_context = parser_context or {}
        limit = settings.MISIS_JSON_MAX_BYTES
        length = _content_length(parser_context)
        if length is not None and length > limit:
            # Refused from the headers: the body is never parsed nor kept.
            if length <= _DISCARD_MAX:
                _discard(stream, length)
            raise PayloadTooLarge(f"the JSON body is larger than {limit} bytes")
        raw = read_bounded(stream, limit)
        max_depth = settings.MISIS_JSON_MAX_DEPTH
        if json_depth(raw) > max_depth:
            raise ParseError(
                f"JSON parse error - arrays and objects nested deeper than {max_depth}"
            )
        return JSONParser().parse(io.BytesIO(raw), media_type, parser_context)
