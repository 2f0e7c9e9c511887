"""The operator's allow and deny lists for network sources."""

from __future__ import annotations

import pytest

from runner.hosts import DEFAULT_PRODUCTION_DENY, HostRefused, check_host, check_url


@pytest.fixture
def lists(settings: pytest.FixtureRequest) -> pytest.FixtureRequest:
    settings.MISIS_SOURCE_ALLOW = []  # type: ignore[attr-defined]
    settings.MISIS_SOURCE_DENY = list(DEFAULT_PRODUCTION_DENY)  # type: ignore[attr-defined]
    return settings


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.1.2.3",
        "::1",
        "[::1]",
        "169.254.169.254",
        "fe80::1",
        "0.0.0.0",
        "fd00:ec2::254",
        "localhost",
        "metadata.google.internal",
    ],
)
def test_production_defaults_refuse_loopback_link_local_and_metadata(
    lists: object, host: str
) -> None:
    with pytest.raises(HostRefused, match="deny list"):
        check_host(host)


@pytest.mark.parametrize("host", ["10.1.2.3", "192.168.0.10", "8.8.8.8", "2001:db8::5"])
def test_other_addresses_pass_without_an_allow_list(lists: object, host: str) -> None:
    check_host(host)


def test_allow_list_admits_only_its_entries_and_wins_over_the_deny_list(lists: object) -> None:
    lists.MISIS_SOURCE_ALLOW = ["10.0.0.0/8", "cam1.example.com", ".cams.example.com", "127.0.0.5"]  # type: ignore[attr-defined]
    check_host("10.20.30.40")
    check_host("127.0.0.5")  # named outright: the operator's choice beats the default deny
    check_host("cam1.example.com")  # names are not resolved when allowed by name
    check_host("a.b.cams.example.com")
    with pytest.raises(HostRefused, match="allow list"):
        check_host("192.168.1.1")
    with pytest.raises(HostRefused, match="allow list"):
        check_host("127.0.0.1")


def test_operator_deny_entries_by_name_and_network(lists: object) -> None:
    lists.MISIS_SOURCE_DENY = ["10.9.0.0/16", "bad.example.com", ".internal"]  # type: ignore[attr-defined]
    with pytest.raises(HostRefused):
        check_host("10.9.1.1")
    with pytest.raises(HostRefused):
        check_host("BAD.example.com.")
    with pytest.raises(HostRefused):
        check_host("db.internal")
    check_host("10.8.1.1")


def test_names_are_judged_by_every_address_they_resolve_to(lists: object) -> None:
    with pytest.raises(HostRefused, match=r"localhost \((127\.0\.0\.1|::1)\)"):
        check_host("localhost")
    with pytest.raises(LookupError, match="cannot resolve"):
        check_host("no-such-camera.invalid")


def test_url_without_host_is_refused(lists: object) -> None:
    with pytest.raises(HostRefused, match="no host"):
        check_url("rtsp:///stream")
    check_url("rtsp://user:pw@10.0.0.7:554/stream")
