"""Which hosts network sources may reach: built-in denials, normalised addresses, the operator's
allow and deny lists, and the addresses callers connect to."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest
from pytest_django import Settings

from sources.hosts import HostRefused, allowed_addresses, check_host, check_url

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address


@pytest.fixture
def lists(settings: Settings) -> Any:
    """Test settings as they are (loopback allowed, empty operator lists)."""
    settings.MISIS_SOURCE_ALLOW = []
    settings.MISIS_SOURCE_DENY = []
    settings.MISIS_SOURCE_DENY_LOOPBACK = False
    return settings


@pytest.fixture
def production(lists: Any) -> Any:
    lists.MISIS_SOURCE_DENY_LOOPBACK = True
    return lists


# Denied in every environment, in every spelling that reaches the same place.
ALWAYS_DENIED = [
    "169.254.169.254",
    "[169.254.169.254]",
    "fd00:ec2::254",
    "100.100.100.200",
    "168.63.129.16",
    "metadata.google.internal",
    "METADATA.google.internal.",
    "metadata",
    "169.254.1.1",
    "fe80::1",
    "[fe80::1]",
    # IPv4-mapped: Linux connects to these over IPv4.
    "[::ffff:169.254.169.254]",
    "::ffff:a9fe:a9fe",
    "::ffff:100.100.100.200",
    # IPv4-translated (SIIT), IPv4-compatible, 6to4, Teredo (server), NAT64 well-known and
    # local-use prefixes (RFC 6052 layouts /96 and /48).
    "::ffff:0:a9fe:a9fe",
    "::169.254.169.254",
    "2002:a9fe:a9fe::1",
    "2001:0:a9fe:a9fe::1",
    "64:ff9b::169.254.169.254",
    "64:ff9b:1::a9fe:a9fe",
    "64:ff9b:1:a9fe:a9:fe00::",
    # Unspecified ("this network"): connecting there reaches this machine.
    "0.0.0.0",
    "0.1.2.3",
    "::",
    "[::]",
    "::ffff:0.0.0.0",
    # Multicast, broadcast, reserved.
    "224.0.0.1",
    "ff02::1",
    "255.255.255.255",
    "240.0.0.1",
]


@pytest.mark.parametrize("host", ALWAYS_DENIED)
def test_builtin_denials_hold_in_every_environment(lists: Any, host: str) -> None:
    with pytest.raises(HostRefused, match="built-in deny list"):
        allowed_addresses(host)


@pytest.mark.parametrize("host", ALWAYS_DENIED)
def test_no_allow_entry_overrides_a_builtin_denial(lists: Any, host: str) -> None:
    lists.MISIS_SOURCE_ALLOW = [
        "0.0.0.0/0",
        "::/0",
        "169.254.0.0/16",
        "metadata.google.internal",
        "metadata",
        host.strip("[]").lower().rstrip("."),
    ]
    with pytest.raises(HostRefused, match="built-in deny list"):
        allowed_addresses(host)


def test_the_operators_deny_list_adds_to_the_builtin_one(lists: Any) -> None:
    lists.MISIS_SOURCE_DENY = ["10.9.0.0/16"]
    with pytest.raises(HostRefused, match="built-in deny list: a cloud metadata service"):
        allowed_addresses("169.254.169.254")
    with pytest.raises(HostRefused, match=r"MISIS_SOURCE_DENY"):
        allowed_addresses("10.9.1.1")


LOOPBACK = [
    "127.0.0.1",
    "127.1.2.3",
    "::1",
    "[::1]",
    "localhost",
    "LocalHost.",
    "cam.localhost",
    "[::ffff:127.0.0.1]",
    "::ffff:7f00:1",
    "::127.0.0.1",
    "2002:7f00:1::",
    "64:ff9b::127.0.0.1",
]


@pytest.mark.parametrize("host", LOOPBACK)
def test_production_refuses_loopback_in_every_form(production: Any, host: str) -> None:
    with pytest.raises(HostRefused, match="built-in deny list: loopback"):
        allowed_addresses(host)


def test_production_loopback_denial_is_not_overridable(production: Any) -> None:
    production.MISIS_SOURCE_ALLOW = ["127.0.0.0/8", "::1", "localhost"]
    for host in ("127.0.0.1", "::1", "localhost", "::ffff:127.0.0.1"):
        with pytest.raises(HostRefused, match="loopback"):
            allowed_addresses(host)


def test_test_settings_keep_loopback_for_the_media_servers(lists: Any) -> None:
    assert allowed_addresses("127.0.0.1") == [V4("127.0.0.1")]
    assert V4("127.0.0.1") in allowed_addresses("localhost")


# "127.0.0.1" in fullwidth digits: IDNA (as getaddrinfo applies it) maps them to ASCII.
FULLWIDTH = "\uff11\uff12\uff17.\uff10.\uff10.\uff11"
NON_STANDARD = ["2130706433", "0x7f.1", "0177.0.0.1", "127.1", "0x7f000001", FULLWIDTH]


@pytest.mark.parametrize("host", NON_STANDARD)
def test_resolvers_read_odd_ipv4_spellings_that_ipaddress_rejects(host: str) -> None:
    # Why the check cannot rely on ipaddress alone: getaddrinfo (and so FFmpeg, aiohttp...)
    # reads each of these as 127.0.0.1.
    with pytest.raises(ValueError):
        ipaddress.ip_address(host)
    answers = {info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
    assert answers == {"127.0.0.1"}


@pytest.mark.parametrize("host", NON_STANDARD)
def test_odd_ipv4_spellings_are_refused_everywhere(lists: Any, host: str) -> None:
    # Refused even where 127.0.0.1 itself is allowed: one spelling per address.
    with pytest.raises(HostRefused, match="non-standard form"):
        allowed_addresses(host)


@pytest.mark.parametrize("host", NON_STANDARD)
def test_odd_ipv4_spellings_in_urls_are_refused(production: Any, host: str) -> None:
    with pytest.raises(HostRefused):
        check_url(f"http://{host}/latest/meta-data/")


@pytest.mark.parametrize(
    "url", ["http://127%2e0.0.1/", "http://[fe80::1%25eth0]/", "http://a%40b/"]
)
def test_percent_in_a_host_is_refused(lists: Any, url: str) -> None:
    with pytest.raises(HostRefused, match="'%'"):
        check_url(url)


def test_addresses_are_returned_as_they_should_be_connected_to(lists: Any) -> None:
    assert allowed_addresses("10.0.0.7") == [V4("10.0.0.7")]
    assert allowed_addresses("[::ffff:10.0.0.7]") == [V4("10.0.0.7")]
    assert allowed_addresses("::ffff:a00:7") == [V4("10.0.0.7")]
    assert allowed_addresses("[2001:db8::5]") == [V6("2001:db8::5")]
    # A NAT64 address is connected to over IPv6 (the gateway translates); only matched as IPv4.
    assert allowed_addresses("64:ff9b::10.0.0.7") == [V6("64:ff9b::a00:7")]
    resolved = [info[4][0] for info in socket.getaddrinfo("localhost", None, proto=6)]
    assert [str(a) for a in allowed_addresses("localhost")] == list(dict.fromkeys(resolved))


def test_embedded_ipv4_addresses_match_the_operators_rules(lists: Any) -> None:
    lists.MISIS_SOURCE_DENY = ["10.9.0.0/16"]
    for host in ("::ffff:10.9.0.1", "64:ff9b::10.9.0.1", "2002:a09:1::1", "::ffff:0:a09:1"):
        with pytest.raises(HostRefused, match=r"MISIS_SOURCE_DENY\), as 10\.9\.0\.1"):
            allowed_addresses(host)
    lists.MISIS_SOURCE_DENY = []
    lists.MISIS_SOURCE_ALLOW = ["10.0.0.0/8"]
    assert allowed_addresses("::ffff:10.1.2.3") == [V4("10.1.2.3")]
    with pytest.raises(HostRefused, match="allow list"):
        allowed_addresses("::ffff:192.168.1.1")


@pytest.mark.parametrize("host", ["10.1.2.3", "192.168.0.10", "8.8.8.8", "2001:db8::5"])
def test_other_addresses_pass_without_an_allow_list(production: Any, host: str) -> None:
    check_host(host)


def test_allow_list_admits_only_its_entries(production: Any) -> None:
    production.MISIS_SOURCE_ALLOW = ["10.0.0.0/8", "2001:db8::/32"]
    check_host("10.20.30.40")
    check_host("2001:db8::1")
    with pytest.raises(HostRefused, match="allow list"):
        check_host("192.168.1.1")
    with pytest.raises(HostRefused, match="allow list"):
        check_host("2001:db9::1")


def test_names_on_the_allow_list_are_still_resolved_and_checked(lists: Any) -> None:
    lists.MISIS_SOURCE_ALLOW = ["localhost", ".cams.invalid"]
    # Allowed by name: its addresses need not be on the allow list, but they are resolved...
    assert V4("127.0.0.1") in allowed_addresses("localhost")
    with pytest.raises(LookupError):
        allowed_addresses("cam1.cams.invalid")
    # ...and checked against every denial: a name is no way around the deny list.
    lists.MISIS_SOURCE_DENY = ["127.0.0.0/8", "::1"]
    with pytest.raises(HostRefused, match=r"localhost \((127\.0\.0\.1|::1)\).*MISIS_SOURCE_DENY"):
        allowed_addresses("localhost")
    # Names the allow list does not hold are refused without being resolved.
    with pytest.raises(HostRefused, match="allow list"):
        allowed_addresses("no-such-camera.invalid")


def test_a_deny_entry_beats_an_allow_entry(lists: Any) -> None:
    lists.MISIS_SOURCE_ALLOW = ["10.0.0.0/8"]
    lists.MISIS_SOURCE_DENY = ["10.0.5.0/24"]
    check_host("10.0.4.1")
    with pytest.raises(HostRefused, match="MISIS_SOURCE_DENY"):
        check_host("10.0.5.1")


def test_operator_deny_entries_by_name_and_network(lists: Any) -> None:
    lists.MISIS_SOURCE_DENY = ["10.9.0.0/16", "bad.example.com", ".internal"]
    with pytest.raises(HostRefused):
        check_host("10.9.1.1")
    with pytest.raises(HostRefused):
        check_host("BAD.example.com.")
    with pytest.raises(HostRefused):
        check_host("db.internal")
    check_host("10.8.1.1")


def test_names_are_judged_by_every_address_they_resolve_to(production: Any) -> None:
    with pytest.raises(HostRefused, match="loopback"):
        check_host("localhost")
    with pytest.raises(LookupError, match="cannot resolve"):
        check_host("no-such-camera.invalid")


def test_refusals_name_the_host_never_the_credentials(production: Any) -> None:
    with pytest.raises(HostRefused) as refused:
        check_url("rtsp://admin:hunter2@[::ffff:169.254.169.254]:554/stream")
    assert "hunter2" not in str(refused.value) and "admin" not in str(refused.value)
    assert "169.254.169.254" in str(refused.value)


def test_url_without_host_is_refused(lists: Any) -> None:
    with pytest.raises(HostRefused, match="no host"):
        check_url("rtsp:///stream")
    with pytest.raises(HostRefused, match="malformed"):
        check_url("rtsp://u:p@[::1/stream")
    check_url("rtsp://user:pw@10.0.0.7:554/stream")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "source",
    [
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "rtsp://admin:pw@[::ffff:127.0.0.1]:554/stream",
        "http://[::]:8000/",
        "http://0.0.0.0:6379/",
        "http://2130706433:6379/",
        "http://0x7f.1/",
        "rtsp://[64:ff9b::a9fe:a9fe]/",
        "onvif://admin:pw@[2002:a9fe:a9fe::1]",
    ],
)
def test_the_api_refuses_such_sources_at_creation(production: Any, api: Any, source: str) -> None:
    resp = api.post("/scenario/", {"source": source}, format="json")
    assert resp.status_code == 400, resp.content
    (message,) = resp.json()["source"]
    assert "built-in deny list" in message or "non-standard form" in message, message
    assert "pw" not in message
