"""onvif:// sources resolved through the real client library (onvif-zeep-async) against the fake
ONVIF device in testbed/media_servers, and WS-Discovery against a fake responder."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from typing import TYPE_CHECKING
from urllib.parse import quote
from xml.etree import ElementTree

import cv2
import pytest
from django.core.management import call_command
from pytest_django import Settings

from runner.sources import SourceError
from sources.hosts import HostRefused, check_url
from sources.onvif import parse_onvif, resolve_stream_uri
from testbed.media_servers.onvif_answers import STREAM_URI, Profile
from testbed.media_servers.onvif_device import DIGEST, WSSE, WSU, OnvifDevice

if TYPE_CHECKING:
    from socket import _Address  # what socket.connect takes (typeshed's alias)
from testbed.processes import free_port
from tests.media_servers.internal_host import INTERNAL_HOST, InternalHost
from tests.media_servers.onvif_fixtures import HOSTILE_STREAM_URIS


def source(device: OnvifDevice, *, password: str | None = None, profile: str = "") -> str:
    secret = quote(device.password if password is None else password, safe="")
    path = f"/{quote(profile, safe='')}" if profile else ""
    return f"onvif://{device.user}:{secret}@127.0.0.1:{device.port}{path}"


def with_credentials(uri: str, device: OnvifDevice) -> str:
    secret = quote(device.password, safe="")
    return uri.replace("rtsp://", f"rtsp://{device.user}:{secret}@", 1)


def host_policy(url: str) -> None:
    """The check_url the runner passes: the operator's host lists, a refusal as SourceError."""
    try:
        check_url(url)
    except (HostRefused, LookupError) as exc:
        raise SourceError(str(exc)) from None


# --- resolving --------------------------------------------------------------------------------


def test_default_profile_is_the_first_with_video(onvif_device: OnvifDevice) -> None:
    started = time.monotonic()
    uri = resolve_stream_uri(source(onvif_device))
    assert uri == with_credentials(STREAM_URI, onvif_device)  # "audio" comes first, no video
    assert time.monotonic() - started < 5
    assert onvif_device.calls[0] == "GetSystemDateAndTime"  # the clock offset, before auth
    assert onvif_device.calls[-2:] == ["GetProfiles", "GetStreamUri"]


def test_named_profile(onvif_device: OnvifDevice) -> None:
    uri = resolve_stream_uri(source(onvif_device, profile="sub"))
    assert uri == with_credentials(STREAM_URI + "/sub", onvif_device)


def test_credentials_are_percent_encoded_into_the_uri(onvif_device: OnvifDevice) -> None:
    uri = resolve_stream_uri(source(onvif_device))
    assert uri.startswith("rtsp://admin:s3cr%3At%2Fp%40ss@127.0.0.1:8554/")


def test_credentials_in_the_device_uri_are_replaced_by_the_sources(
    onvif_device: OnvifDevice,
) -> None:
    """The URI carries exactly the credentials the user gave: none of the device's own."""
    onvif_device.set_stream_uri("main", "rtsp://viewer:view@127.0.0.1:8554/test")
    assert resolve_stream_uri(source(onvif_device)) == with_credentials(STREAM_URI, onvif_device)
    onvif_device.authorized = lambda header: True  # type: ignore[method-assign]
    assert resolve_stream_uri(f"onvif://127.0.0.1:{onvif_device.port}") == STREAM_URI


def test_wrong_password_never_shows_the_password(onvif_device: OnvifDevice) -> None:
    for status in (400, 401):  # cameras answer the NotAuthorized fault with either
        onvif_device.auth_status = status
        with pytest.raises(SourceError) as caught:
            resolve_stream_uri(source(onvif_device, password="hunter2:wrong"))
        text = str(caught.value)
        assert "refused the credentials of user 'admin'" in text
        assert "hunter2" not in text and "hunter2" not in repr(caught.value.__cause__)
    assert "GetProfiles" not in onvif_device.calls


def test_unknown_profile_lists_the_known_tokens(onvif_device: OnvifDevice) -> None:
    with pytest.raises(
        SourceError, match="no media profile 'nope'; its profiles: 'audio', 'main', 'sub'"
    ):
        resolve_stream_uri(source(onvif_device, profile="nope"))
    assert "GetStreamUri" not in onvif_device.calls


def test_no_video_profile(onvif_device: OnvifDevice) -> None:
    onvif_device.profiles = [Profile("audio", "AudioOnly", "rtsp://x/a", video=False)]
    with pytest.raises(SourceError, match="no media profile with a video encoder"):
        resolve_stream_uri(source(onvif_device))


def test_device_fault_is_shown(onvif_device: OnvifDevice) -> None:
    with pytest.raises(
        SourceError,
        match=r"answered with a SOAP fault: The profile has no video encoder "
        r"\(Action, IncompleteConfiguration\)",
    ):
        resolve_stream_uri(source(onvif_device, profile="audio"))


def test_a_web_server_that_is_no_onvif_device() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SimpleHTTPRequestHandler)  # POST: 501 page
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        with pytest.raises(SourceError, match="does not answer like an ONVIF device"):
            resolve_stream_uri(f"onvif://admin:pw@127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()


def test_empty_stream_uri(onvif_device: OnvifDevice) -> None:
    onvif_device.set_stream_uri("main", "")
    with pytest.raises(SourceError, match="gave no stream URI for profile 'main'"):
        resolve_stream_uri(source(onvif_device))


def test_device_down_fails_fast() -> None:
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"cannot reach ONVIF device 127\.0\.0\.1:\d+"):
        resolve_stream_uri(f"onvif://admin:hunter2@127.0.0.1:{free_port()}", timeout=5)
    assert time.monotonic() - started < 5


def test_device_that_never_answers_times_out() -> None:
    # A listening socket that nobody accepts on: the kernel completes the handshake, and the
    # request is never answered.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(SourceError, match=r"did not answer within 1 s") as caught:
            resolve_stream_uri(f"onvif://admin:hunter2@127.0.0.1:{port}", timeout=1)
        assert 1 <= time.monotonic() - started < 3
    assert "hunter2" not in str(caught.value)


def test_re_resolution_follows_the_device(onvif_device: OnvifDevice) -> None:
    assert resolve_stream_uri(source(onvif_device)).endswith("/test")
    onvif_device.set_stream_uri("main", "rtsp://127.0.0.1:8555/moved")
    assert resolve_stream_uri(source(onvif_device)) == with_credentials(
        "rtsp://127.0.0.1:8555/moved", onvif_device
    )


def test_camera_clock_far_off_still_authenticates(onvif_device: OnvifDevice) -> None:
    # The device refuses a Created timestamp more than 5 minutes off its own clock.
    onvif_device.clock_offset = timedelta(hours=-3, minutes=17)
    assert resolve_stream_uri(source(onvif_device)) == with_credentials(STREAM_URI, onvif_device)


def test_fake_device_refuses_a_timestamp_off_its_clock(onvif_device: OnvifDevice) -> None:
    """What makes the test above prove that requests are signed with the camera's time."""
    assert onvif_device.authorized(security_header(onvif_device, datetime.now(UTC)))
    onvif_device.clock_offset = timedelta(hours=-3, minutes=17)
    assert not onvif_device.authorized(security_header(onvif_device, datetime.now(UTC)))
    assert onvif_device.authorized(security_header(onvif_device, onvif_device.now()))
    signed = security_header(onvif_device, onvif_device.now())
    onvif_device.password = "changed"
    assert not onvif_device.authorized(signed)


def security_header(device: OnvifDevice, created: datetime) -> ElementTree.Element:
    """A SOAP header with a WS-Security UsernameToken, as the ONVIF spec describes it."""
    nonce = os.urandom(16)
    stamp = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = hashlib.sha1(nonce + stamp.encode() + device.password.encode()).digest()
    return ElementTree.fromstring(
        f"""<Header xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}"><wsse:Security><wsse:UsernameToken>
        <wsse:Username>{device.user}</wsse:Username>
        <wsse:Password Type="{DIGEST}">{base64.b64encode(digest).decode()}</wsse:Password>
        <wsse:Nonce>{base64.b64encode(nonce).decode()}</wsse:Nonce>
        <wsu:Created>{stamp}</wsu:Created></wsse:UsernameToken></wsse:Security></Header>"""
    )


def test_device_without_get_services_falls_back_to_capabilities(
    onvif_device: OnvifDevice,
) -> None:
    onvif_device.get_services = False
    assert resolve_stream_uri(source(onvif_device)).endswith("/test")
    assert "GetCapabilities" in onvif_device.calls


def test_source_without_credentials_gives_the_uri_as_is(onvif_device: OnvifDevice) -> None:
    onvif_device.authorized = lambda header: True  # type: ignore[method-assign]
    assert resolve_stream_uri(f"onvif://127.0.0.1:{onvif_device.port}") == STREAM_URI


def test_many_threads_at_once(onvif_device: OnvifDevice) -> None:
    with ThreadPoolExecutor(8) as pool:
        uris = list(pool.map(lambda _: resolve_stream_uri(source(onvif_device)), range(16)))
    assert set(uris) == {with_credentials(STREAM_URI, onvif_device)}


def test_only_the_device_is_contacted(
    onvif_device: OnvifDevice, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The WSDLs come from the package: a cold document cache fetches nothing remote."""
    import onvif.client

    monkeypatch.setattr(onvif.client, "_DOCUMENT_CACHE", {})
    contacted: list[object] = []
    connect = socket.socket.connect

    def recording_connect(sock: socket.socket, address: _Address) -> None:
        contacted.append(address)
        connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", recording_connect)
    resolve_stream_uri(source(onvif_device))
    assert contacted and set(contacted) == {("127.0.0.1", onvif_device.port)}


def test_check_url_sees_every_service_before_it_is_contacted(onvif_device: OnvifDevice) -> None:
    checked: list[str] = []
    uri = resolve_stream_uri(source(onvif_device), check_url=checked.append)
    base = f"http://127.0.0.1:{onvif_device.port}"
    assert checked == [f"{base}/onvif/device_service", f"{base}/onvif/media_service", uri]


def test_check_url_refuses_a_media_service_elsewhere(onvif_device: OnvifDevice) -> None:
    def refuse_media(url: str) -> None:
        if "media" in url:
            raise SourceError("host 127.0.0.1 is on the deny list")

    with pytest.raises(SourceError, match="deny list"):
        resolve_stream_uri(source(onvif_device), check_url=refuse_media)
    assert "GetProfiles" not in onvif_device.calls


def test_proxy_settings_survive(onvif_device: OnvifDevice, monkeypatch: pytest.MonkeyPatch) -> None:
    """ONVIFCamera() drops http(s)_proxy from os.environ; S3 uploads may need them."""
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    resolve_stream_uri(source(onvif_device))
    assert os.environ["https_proxy"] == "http://proxy.example:3128"


def test_malformed_source_is_a_source_error() -> None:
    with pytest.raises(SourceError, match="names at most one profile token"):
        resolve_stream_uri("onvif://admin:hunter2@127.0.0.1/a/b")


# --- a hostile device -------------------------------------------------------------------------
# The user names the device, so the device is the attacker's: everything it answers is hostile.
# Each test also asserts that the internal host (127.0.0.2, denied) saw no connection at all.


@pytest.mark.parametrize("name", sorted(HOSTILE_STREAM_URIS))
def test_hostile_stream_uri_is_refused(
    name: str,
    onvif_device: OnvifDevice,
    internal_host: InternalHost,
    caplog: pytest.LogCaptureFixture,
) -> None:
    hostile = HOSTILE_STREAM_URIS[name].format(host=INTERNAL_HOST, port=internal_host.port)
    onvif_device.set_stream_uri("main", hostile)
    with pytest.raises(SourceError, match="gave a stream URI that is refused") as caught:
        resolve_stream_uri(source(onvif_device), timeout=5, check_url=host_policy)
    text = str(caught.value)
    assert "FLUSHALL" not in text and "passwd" not in text and "listen" not in text
    assert "s3cr" not in text and not any(c.isspace() and c != " " for c in text)
    assert onvif_device.calls[-1] == "GetStreamUri"  # refused after it was given, not before
    logged = [r.getMessage() for r in caplog.records if "stream URI refused" in r.getMessage()]
    assert len(logged) == 1  # for the operator: the device's text, its line breaks escaped
    assert "\n" not in logged[0] and "\t" not in logged[0] and "s3cr" not in logged[0]
    assert internal_host.untouched()


def test_ffmpeg_writes_no_line_of_the_devices_choosing(onvif_device: OnvifDevice) -> None:
    """The reproduced attack end to end, with the real FFmpeg: a Redis stand-in on an allowed
    host records what FFmpeg writes. Raw line breaks are refused before FFmpeg runs; escaped
    ones stay escaped in its request line."""
    redis = InternalHost(host="127.0.0.1")
    redis.start()
    try:
        onvif_device.set_stream_uri("main", f"rtsp://{redis.address}/x\r\nFLUSHALL\r\n")
        with pytest.raises(SourceError, match="whitespace or control characters"):
            resolve_stream_uri(source(onvif_device))
        assert redis.untouched()
        onvif_device.set_stream_uri("main", f"rtsp://{redis.address}/x%0D%0AFLUSHALL%0D%0A")
        uri = resolve_stream_uri(source(onvif_device))
        timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 1000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 1000]
        capture = cv2.VideoCapture(uri, cv2.CAP_FFMPEG, timeouts)
        assert not capture.isOpened()  # the stand-in never answers
        capture.release()
        deadline = time.monotonic() + 5
        while b"\r\n\r\n" not in redis.received and time.monotonic() < deadline:
            time.sleep(0.05)
        lines = bytes(redis.received).split(b"\r\n")
    finally:
        redis.close()
    assert lines[0] == f"OPTIONS rtsp://{redis.address}/x%0D%0AFLUSHALL%0D%0A RTSP/1.0".encode()
    assert not any(b"FLUSHALL" in line for line in lines[1:])


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("rtsp://127.0.0.1:8554/x\r\nFLUSHALL\r\n", "whitespace or control characters"),
        ("rtsp://127.0.0.1:8554/x\nSET a b", "whitespace or control characters"),
        ("rtsp://127.0.0.1:8554/x\u0085y", "whitespace or control characters"),
        ("rtsp://127.0.0.1:8554/x\u2028y", "whitespace or control characters"),
        ("rtsp://127.0.0.1:8554/x\u00a0y", "whitespace or control characters"),
        ("rtsp://127.0.0.1:8554/x\u200by", "whitespace or control characters"),
        ("rtsp://127.0.0.1:8554/x\x7fy", "whitespace or control characters"),
        ("rtsp://127.0.0.1:8554/a b", "whitespace or control characters"),
        ("rtspu://127.0.0.1:8554/x", "only rtsp:// and rtsps://"),
        ("//127.0.0.1:8554/x", "only rtsp:// and rtsps://"),
        ("rtsp:///x", "no valid host"),
        ("rtsp://:8554/x", "no valid host"),
        ("rtsp://127.0.0.1:0/x", "port"),
        ("rtsp://127.0.0.1:99999/x", "not a valid URL"),
        ("rtsp://127.0.0.1:x/x", "not a valid URL"),
        ("rtsp://[::1/x", "not a valid URL"),
        ("rtsp://2130706434/x", "no valid host"),
        ("rtsp://127.1/x", "no valid host"),
        ("rtsp://0x7f.0.0.2/x", "no valid host"),
        ("rtsp://[fe80::1%25eth0]/x", "no valid host"),
        ("rtsp://-cam.example/x", "no valid host"),
        ("rtsp://127.0.0.1/x?multicast", "FFmpeg option"),
        ("rtsp://127.0.0.1/x?a=1&udp", "FFmpeg option"),
        ("rtsp://127.0.0.1/x?HTTP", "FFmpeg option"),
        ("rtsp://127.0.0.1/" + "x" * 4096, "longer than"),
    ],
)
def test_malformed_stream_uri_is_refused(
    given: str, reason: str, onvif_device: OnvifDevice
) -> None:
    onvif_device.set_stream_uri("main", given)
    with pytest.raises(SourceError, match=reason) as caught:
        resolve_stream_uri(source(onvif_device))
    text = str(caught.value)
    assert text.startswith(f"ONVIF device 127.0.0.1:{onvif_device.port} gave a stream URI")
    assert "s3cr" not in text and "FLUSHALL" not in text and "eth0" not in text


@pytest.mark.parametrize(
    ("given", "rebuilt"),
    [
        ("rtsp://127.0.0.1:8554/test", "rtsp://{auth}@127.0.0.1:8554/test"),
        ("RTSP://CAM-1.Example.com/ch1", "rtsp://{auth}@cam-1.example.com/ch1"),
        ("rtsps://[::1]:322/a/b", "rtsps://{auth}@[::1]:322/a/b"),
        ("rtsp://[0:0::1]/a", "rtsp://{auth}@[::1]/a"),
        ("rtsp://root:toor@127.0.0.1/x", "rtsp://{auth}@127.0.0.1/x"),
        ("rtsp://cam.example\\@127.0.0.1/x", "rtsp://{auth}@127.0.0.1/x"),
        ("rtsp://127.0.0.1", "rtsp://{auth}@127.0.0.1"),
        (
            "rtsp://127.0.0.1/Streaming/Channels/101?transportmode=unicast&profile=Profile_1",
            "rtsp://{auth}@127.0.0.1/Streaming/Channels/101?transportmode=unicast&profile=Profile_1",
        ),
        (
            'rtsp://127.0.0.1/caf\u00e9/%41%2f%zz/"<>',
            "rtsp://{auth}@127.0.0.1/caf%C3%A9/%41%2f%25zz/%22%3C%3E",
        ),
        ("rtsp://127.0.0.1/x?a=b?c&d=%", "rtsp://{auth}@127.0.0.1/x?a=b%3Fc&d=%25"),
        ("rtsp://127.0.0.1/x?", "rtsp://{auth}@127.0.0.1/x"),
        ("rtsp://127.0.0.1/x#fragment", "rtsp://{auth}@127.0.0.1/x"),
        # XML Schema collapses the whitespace around an anyURI: a pretty-printed answer.
        ("\n    rtsp://127.0.0.1:8554/test\n  ", "rtsp://{auth}@127.0.0.1:8554/test"),
    ],
)
def test_stream_uri_is_rebuilt_from_its_checked_parts(
    given: str, rebuilt: str, onvif_device: OnvifDevice
) -> None:
    onvif_device.set_stream_uri("main", given)
    auth = f"admin:{quote(onvif_device.password, safe='')}"
    assert resolve_stream_uri(source(onvif_device)) == rebuilt.format(auth=auth)


def test_stream_uri_on_a_denied_host_is_refused(
    onvif_device: OnvifDevice, internal_host: InternalHost
) -> None:
    onvif_device.set_stream_uri("main", f"rtsp://{internal_host.address}/x")
    with pytest.raises(SourceError, match="deny list") as caught:
        resolve_stream_uri(source(onvif_device), check_url=host_policy)
    assert "s3cr" not in str(caught.value)
    assert internal_host.untouched()


@pytest.mark.parametrize("operation", ["GetSystemDateAndTime", "GetServices", "GetStreamUri"])
@pytest.mark.parametrize("check", [None, host_policy], ids=["connector", "check_url"])
def test_soap_redirect_to_the_internal_host_is_not_followed(
    operation: str,
    check: Callable[[str], None] | None,
    onvif_device: OnvifDevice,
    internal_host: InternalHost,
) -> None:
    onvif_device.redirects[operation] = f"http://{internal_host.address}/onvif/device_service"
    with pytest.raises(SourceError, match=r"answered with a redirect \(HTTP 302\)"):
        resolve_stream_uri(source(onvif_device), timeout=3, check_url=check)
    assert onvif_device.calls[-1] == operation
    assert internal_host.untouched()


def test_soap_redirect_to_an_allowed_host_is_not_followed_either(
    onvif_device: OnvifDevice, make_onvif_device: Callable[..., OnvifDevice]
) -> None:
    other = make_onvif_device()
    onvif_device.redirects["GetProfiles"] = f"http://127.0.0.1:{other.port}/onvif/media_service"
    with pytest.raises(SourceError, match="redirect"):
        resolve_stream_uri(source(onvif_device), timeout=3)
    assert other.calls == []


@pytest.mark.parametrize(
    "xaddr",
    [
        "http://{host}:{port}/onvif/media_service",
        "https://{host}:{port}/onvif/media_service",
        "http://[::ffff:{host}]:{port}/onvif/media_service",  # IPv4-mapped: Linux connects
    ],
)
@pytest.mark.parametrize("check", [None, host_policy], ids=["connector", "check_url"])
def test_media_service_on_the_internal_host_is_never_contacted(
    xaddr: str,
    check: Callable[[str], None] | None,
    onvif_device: OnvifDevice,
    internal_host: InternalHost,
) -> None:
    """Without check_url too: the client itself refuses to connect where the lists forbid."""
    onvif_device.media_xaddr = xaddr.format(host=INTERNAL_HOST, port=internal_host.port)
    with pytest.raises(SourceError, match="deny list") as caught:
        resolve_stream_uri(source(onvif_device), timeout=3, check_url=check)
    assert "s3cr" not in str(caught.value)
    assert "GetProfiles" not in onvif_device.calls
    assert internal_host.untouched()


@pytest.mark.parametrize("xaddr", ["http://2130706434:{port}/x", "http://127.2:{port}/x"])
def test_media_service_in_a_numeric_disguise_is_never_contacted(
    xaddr: str, onvif_device: OnvifDevice, internal_host: InternalHost
) -> None:
    """getaddrinfo reads these as 127.0.0.2."""
    onvif_device.media_xaddr = xaddr.format(port=internal_host.port)
    with pytest.raises(SourceError):
        resolve_stream_uri(source(onvif_device), timeout=3)
    assert "GetProfiles" not in onvif_device.calls
    assert internal_host.untouched()


def test_media_service_named_by_a_denied_name_is_refused(
    onvif_device: OnvifDevice, settings: Settings
) -> None:
    onvif_device.media_xaddr = f"http://localhost:{onvif_device.port}/onvif/media_service"
    assert resolve_stream_uri(source(onvif_device)) == with_credentials(STREAM_URI, onvif_device)
    assert "GetProfiles" in onvif_device.calls  # reached by name, through the resolver
    onvif_device.calls.clear()
    settings.MISIS_SOURCE_DENY = [*settings.MISIS_SOURCE_DENY, "localhost"]
    with pytest.raises(SourceError, match="host localhost is on the deny list"):
        resolve_stream_uri(source(onvif_device), timeout=3)
    assert "GetProfiles" not in onvif_device.calls


def test_the_client_resolver_gives_only_allowed_addresses(settings: Settings) -> None:
    """aiohttp connects to what the resolver returns: the checked answer, not a second one."""
    from sources.onvif_client import PolicyResolver

    async def resolve() -> list[str]:
        return [r["host"] for r in await PolicyResolver().resolve("localhost", 80)]

    assert asyncio.run(resolve()) == ["127.0.0.1"]
    settings.MISIS_SOURCE_DENY = [*settings.MISIS_SOURCE_DENY, "127.0.0.0/8"]
    with pytest.raises(HostRefused, match="host localhost"):
        asyncio.run(resolve())


def test_media_service_with_an_invalid_address_is_refused(onvif_device: OnvifDevice) -> None:
    for xaddr in (
        f"http://127.0.0.1:{onvif_device.port}/onvif/media_service\r\nX-Injected: 1",
        f"gopher://127.0.0.1:{onvif_device.port}/_x",
        "http:///onvif/media_service",
    ):
        onvif_device.media_xaddr = xaddr
        onvif_device.calls.clear()
        with pytest.raises(SourceError, match="advertises an invalid Media service address"):
            resolve_stream_uri(source(onvif_device), timeout=3)
        assert "GetProfiles" not in onvif_device.calls


@pytest.mark.parametrize("check", [None, host_policy], ids=["connector", "check_url"])
def test_a_denied_device_gets_one_answer_whatever_listens_there(
    check: Callable[[str], None] | None,
    internal_host: InternalHost,
    make_onvif_device: Callable[..., OnvifDevice],
) -> None:
    """A user must not learn what runs on a host they may not reach: a real camera, a web
    server, a port that accepts and stays silent, and a closed port all read the same."""
    camera = make_onvif_device(bind=INTERNAL_HOST, user="admin", password="pw")
    web = ThreadingHTTPServer((INTERNAL_HOST, 0), SimpleHTTPRequestHandler)
    threading.Thread(target=web.serve_forever, args=(0.05,), daemon=True).start()
    ports = [camera.port, web.server_address[1], internal_host.port, free_port(INTERNAL_HOST)]
    texts = set()
    try:
        for port in ports:
            started = time.monotonic()
            with pytest.raises(SourceError) as caught:
                resolve_stream_uri(
                    f"onvif://admin:pw@{INTERNAL_HOST}:{port}", timeout=5, check_url=check
                )
            assert time.monotonic() - started < 4  # refused at once, not timed out
            texts.add(str(caught.value).replace(str(port), "PORT"))
    finally:
        web.shutdown()
        web.server_close()
    assert len(texts) == 1, texts
    assert "deny list" in texts.pop()
    assert camera.calls == []
    assert internal_host.untouched()


@pytest.mark.parametrize("check", [None, host_policy], ids=["connector", "check_url"])
def test_a_denied_media_service_gets_one_answer_whatever_listens_there(
    check: Callable[[str], None] | None,
    onvif_device: OnvifDevice,
    internal_host: InternalHost,
    make_onvif_device: Callable[..., OnvifDevice],
) -> None:
    camera = make_onvif_device(bind=INTERNAL_HOST)
    texts = set()
    for port in (camera.port, internal_host.port, free_port(INTERNAL_HOST)):
        onvif_device.media_xaddr = f"http://{INTERNAL_HOST}:{port}/onvif/media_service"
        with pytest.raises(SourceError) as caught:
            resolve_stream_uri(source(onvif_device), timeout=2, check_url=check)
        texts.add(str(caught.value))
    assert len(texts) == 1, texts
    assert camera.calls == []
    assert internal_host.untouched()


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "good",
    [
        "onvif://cam",
        "onvif://cam/",
        "ONVIF://admin:pw@cam.local:8080/main",
        "onvif://admin@10.0.0.5",
        "onvif://admin:p%40ss%2Fw@[fe80::1]:8000/Profile%20000",
    ],
)
def test_valid_sources(good: str) -> None:
    parse_onvif(good)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("onvif://", "needs a host"),
        ("onvif://admin:hunter2@", "needs a host"),
        ("onvif://admin:hunter2@:8080", "needs a host"),
        ("onvif://admin:hunter2@cam:0", "1-65535"),
        ("onvif://admin:hunter2@cam:99999", "not a valid onvif URL"),
        ("onvif://admin:hunter2@cam:http", "not a valid onvif URL"),
        ("onvif://admin:hunter2@[::1/main", "not a valid onvif URL"),
        ("onvif://admin:hunter2@cam/main/sub", "at most one profile token"),
        ("onvif://admin:hunter2@cam//", "at most one profile token"),
        ("onvif://admin:hunter2@cam/main?x=1", "no query or fragment"),
        ("onvif://admin:hunter2@cam#x", "no query or fragment"),
        ("onvif://admin:hun#ter2@cam", "percent-encode"),
        ("onvif://:hunter2@cam", "needs a user name"),
        ("rtsp://admin:hunter2@cam", "not an onvif URL"),
    ],
)
def test_invalid_sources(bad: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as caught:
        parse_onvif(bad)
    assert "hunter2" not in str(caught.value)


def test_parse_onvif() -> None:
    parsed = parse_onvif("onvif://ad%20min:p%40ss@Cam.Local/Profile%20000")
    assert (parsed.user, parsed.password, parsed.host, parsed.port, parsed.profile) == (
        "ad min",
        "p@ss",
        "cam.local",
        80,
        "Profile 000",
    )
    assert "p@ss" not in repr(parsed)
    assert parse_onvif("onvif://[fe80::1]:8000").address == "[fe80::1]:8000"


# --- discovery --------------------------------------------------------------------------------

WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"


def probe_matches(relates_to: str, endpoint: str, xaddrs: str, scopes: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope"
 xmlns:wsa="{WSA}" xmlns:d="{WSD}" xmlns:dn="http://www.onvif.org/ver10/network/wsdl">
<SOAP-ENV:Header><wsa:MessageID>urn:uuid:{endpoint}-answer</wsa:MessageID>
<wsa:RelatesTo>{relates_to}</wsa:RelatesTo>
<wsa:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:To>
<wsa:Action>{WSD}/ProbeMatches</wsa:Action></SOAP-ENV:Header>
<SOAP-ENV:Body><d:ProbeMatches><d:ProbeMatch>
<wsa:EndpointReference><wsa:Address>urn:uuid:{endpoint}</wsa:Address></wsa:EndpointReference>
<d:Types>dn:NetworkVideoTransmitter</d:Types><d:Scopes>{scopes}</d:Scopes>
<d:XAddrs>{xaddrs}</d:XAddrs><d:MetadataVersion>1</d:MetadataVersion>
</d:ProbeMatch></d:ProbeMatches></SOAP-ENV:Body></SOAP-ENV:Envelope>""".encode()


@pytest.fixture
def responder(onvif_device: OnvifDevice) -> Iterator[tuple[int, list[bytes]]]:
    """A UDP WS-Discovery responder on 127.0.0.1 that answers each Probe with the fake device,
    a duplicate of it, an answer to another probe, and some noise."""
    probes: list[bytes] = []
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)

    def serve() -> None:
        try:
            data, sender = sock.recvfrom(65535)
        except OSError:
            return
        probes.append(data)
        message_id = ElementTree.fromstring(data).findtext(f".//{{{WSA}}}MessageID") or ""
        xaddr = f"http://127.0.0.1:{onvif_device.port}/onvif/device_service"
        scopes = (
            "onvif://www.onvif.org/type/video_encoder onvif://www.onvif.org/name/Fake%20Cam "
            "onvif://www.onvif.org/hardware/FC1 onvif://www.onvif.org/Profile/Streaming"
        )
        answer = probe_matches(message_id, "cam-1", f"{xaddr} http://[fe80::1]/x", scopes)
        sock.sendto(answer, sender)
        sock.sendto(answer, sender)
        sock.sendto(probe_matches("urn:uuid:other", "cam-2", "http://10.9.9.9/x", ""), sender)
        sock.sendto(b"not xml", sender)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock.getsockname()[1], probes
    sock.close()
    thread.join(5)


def test_discover_cameras_command(
    responder: tuple[int, list[bytes]], onvif_device: OnvifDevice
) -> None:
    port, probes = responder
    out = StringIO()
    call_command(
        "discover_cameras",
        "--address=127.0.0.1",  # unicast: the sandbox has no multicast to test with
        f"--port={port}",
        "--timeout=0.5",
        stdout=out,
    )
    text = out.getvalue()
    probe = ElementTree.fromstring(probes[0])
    assert probe.findtext(f".//{{{WSD}}}Types") == "dn:NetworkVideoTransmitter"
    assert probe.findtext(f".//{{{WSA}}}Action") == f"{WSD}/Probe"
    assert "urn:uuid:cam-1  name=Fake Cam hardware=FC1" in text
    assert f"XAddrs: http://127.0.0.1:{onvif_device.port}/onvif/device_service" in text
    assert "onvif://www.onvif.org/Profile/Streaming" in text
    assert text.count("urn:uuid:cam-1 ") == 1  # the duplicate answer is merged
    assert "cam-2" not in text  # the answer to another probe is ignored
    assert "1 camera(s)" in text
    # The printed source, with credentials added, resolves.
    printed = next(line.split()[1] for line in text.splitlines() if "source:" in line)
    assert printed == f"onvif://127.0.0.1:{onvif_device.port}"
    with_user = printed.replace(
        "onvif://", f"onvif://admin:{quote(onvif_device.password, safe='')}@"
    )
    assert resolve_stream_uri(with_user).endswith("/test")


def test_discover_cameras_nobody_answers() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as quiet:
        quiet.bind(("127.0.0.1", 0))
        out = StringIO()
        call_command(
            "discover_cameras",
            "--address=127.0.0.1",
            f"--port={quiet.getsockname()[1]}",
            "--timeout=0.2",
            stdout=out,
        )
    assert "No ONVIF camera answered." in out.getvalue()
