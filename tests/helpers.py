"""Helpers several test modules share (written once here; model factories: tests/factories.py,
child processes and ports: testbed/processes.py)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from ipaddress import IPv4Network, IPv6Network
from typing import cast

import pytest
from django.http import HttpResponseBase, StreamingHttpResponse
from rest_framework.authtoken.models import Token

from runner.sources import Frame, VideoSource


def read_all(source: VideoSource) -> list[Frame]:
    """Every frame of an opened source, read to its end (the caller opens and closes it)."""
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    return frames


def streamed_body(response: HttpResponseBase) -> bytes:
    """The whole body of a streamed response (a static file WhiteNoise serves, say)."""
    assert isinstance(response, StreamingHttpResponse), type(response)
    return b"".join(cast(Iterator[bytes], response.streaming_content))


def token_key(token: Token) -> str:
    """A token's key (DRF's stub declares the field without its type, so it reads as Any)."""
    return cast(str, token.key)


def subnet_of(inner: IPv4Network | IPv6Network, outer: IPv4Network | IPv6Network) -> bool:
    """``inner.subnet_of(outer)``: typeshed takes only a network of the same version there, and
    at run time two versions raise TypeError, as here."""
    if isinstance(inner, IPv4Network) and isinstance(outer, IPv4Network):
        return inner.subnet_of(outer)
    if isinstance(inner, IPv6Network) and isinstance(outer, IPv6Network):
        return inner.subnet_of(outer)
    raise TypeError(f"{inner} and {outer} are not of the same version")


def wait_for(check: Callable[[], bool], timeout: float = 15.0, every: float = 0.01) -> None:
    """Poll ``check`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(every)


CHROMIUM = "/usr/bin/chromium"  # Debian's, which ./run.sh --test installs


def require_chromium(test: str) -> None:
    """Fail ``test`` (a browser test), saying why, where Debian's Chromium is missing."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: {test} needs Debian's Chromium"
            " (apt-get install -y chromium; ./run.sh --test installs it)"
        )
