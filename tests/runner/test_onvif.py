"""onvif:// sources resolved through the real client library (onvif-zeep-async) against the fake
ONVIF device in tests/media_servers, and WS-Discovery against a fake responder."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from urllib.parse import quote
from xml.etree import ElementTree

import pytest
from django.core.management import call_command

from runner.onvif import parse_onvif, resolve_stream_uri, validate_onvif_source
from runner.sources import SourceError
from tests.media_servers.onvif_device import DIGEST, WSSE, WSU, OnvifDevice, Profile
from tests.media_servers.onvif_fixtures import STREAM_URI


def source(device: OnvifDevice, *, password: str | None = None, profile: str = "") -> str:
    secret = quote(device.password if password is None else password, safe="")
    path = f"/{quote(profile, safe='')}" if profile else ""
    return f"onvif://{device.user}:{secret}@127.0.0.1:{device.port}{path}"


def with_credentials(uri: str, device: OnvifDevice) -> str:
    secret = quote(device.password, safe="")
    return uri.replace("rtsp://", f"rtsp://{device.user}:{secret}@", 1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


def test_uri_with_its_own_credentials_is_kept(onvif_device: OnvifDevice) -> None:
    onvif_device.set_stream_uri("main", "rtsp://viewer:view@127.0.0.1:8554/test")
    assert resolve_stream_uri(source(onvif_device)) == "rtsp://viewer:view@127.0.0.1:8554/test"


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

    def recording_connect(sock: socket.socket, address: object) -> None:
        contacted.append(address)
        connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", recording_connect)
    resolve_stream_uri(source(onvif_device))
    assert contacted and set(contacted) == {("127.0.0.1", onvif_device.port)}


def test_check_url_sees_every_service_before_it_is_contacted(onvif_device: OnvifDevice) -> None:
    checked: list[str] = []
    resolve_stream_uri(source(onvif_device), check_url=checked.append)
    base = f"http://127.0.0.1:{onvif_device.port}"
    assert checked == [f"{base}/onvif/device_service", f"{base}/onvif/media_service"]


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
    validate_onvif_source(good)


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
        validate_onvif_source(bad)
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
