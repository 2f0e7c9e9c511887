"""Fixtures for a fake ONVIF camera on 127.0.0.1 (testbed/media_servers/onvif_device.py).

A test that reads frames points the stream URIs at its RTSP server, e.g.
``onvif_device.set_stream_uri("main", rtsp_server.url(auth=False))``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from testbed.media_servers.onvif_answers import default_profiles
from testbed.media_servers.onvif_device import OnvifDevice

__all__ = ["make_onvif_device", "onvif_device"]

# What a hostile device answers GetStreamUri with, aimed at {host}:{port} (format them): each
# makes FFmpeg talk to a service of the attacker's choosing, or listen, if it is opened as sent.
HOSTILE_STREAM_URIS = {
    # FFmpeg writes "OPTIONS rtsp://host:port/x\nFLUSHALL\n": a Redis command on its own line.
    "crlf": "rtsp://{host}:{port}/x\r\nFLUSHALL\r\n",
    "tab": "rtsp://{host}:{port}/x\tFLUSHALL",
    "spaces": "rtsp://{host}:{port}/x FLUSHALL now",
    "gopher": "gopher://{host}:{port}/_FLUSHALL%0D%0A",
    "tcp-listen": "tcp://{host}:{port}?listen=1",
    "udp": "udp://{host}:{port}",
    "http": "http://{host}:{port}/latest/meta-data/",
    "file": "file:///etc/passwd",
    # FFmpeg reads a bare "udp" or "multicast" in the query as its own transport option: the
    # RTSP server would then name the peer FFmpeg sends UDP to.
    "ffmpeg-option": "rtsp://{host}:{port}/x?udp",
}


@pytest.fixture
def make_onvif_device() -> Iterator[Callable[..., OnvifDevice]]:
    """Start fake cameras with any OnvifDevice fields (user, password, profiles, ...)."""
    devices: list[OnvifDevice] = []

    def make(**fields: Any) -> OnvifDevice:
        fields.setdefault("profiles", default_profiles())
        device = OnvifDevice(**fields).start()
        devices.append(device)
        return device

    yield make
    for device in devices:
        device.stop()


@pytest.fixture
def onvif_device(make_onvif_device: Callable[..., OnvifDevice]) -> OnvifDevice:
    """A camera with user admin, a password that needs percent-encoding in a URL, and the
    profiles audio (no video), main (STREAM_URI) and sub (STREAM_URI/sub)."""
    return make_onvif_device(user="admin", password="s3cr:t/p@ss")
