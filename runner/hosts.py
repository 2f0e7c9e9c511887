"""Which hosts network sources may name: the operator's allow and deny lists.

A scenario's source is a URL that the runner, inside the operator's network, connects to; left
open, any API user could point it at the cloud metadata service or at internal admin ports.
Entries are IP networks (``10.0.0.0/8``, ``::1``), exact host names (``cam1.example.com``) or
domain suffixes (``.cams.example.com``). A host passes when it matches the allow list (if that
list is set) and no address it resolves to is denied, unless an allow entry names it outright.

Checked when a scenario is created and again before every (re)connect, after ONVIF resolution:
DNS may change in between. FFmpeg resolves the name once more itself, so a name whose answers
flip between checks (DNS rebinding) is only caught by denying the networks, not the names.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Loopback, link-local (which holds the cloud metadata service), "this network", and the
# metadata addresses that are not link-local; production settings deny these by default.
DEFAULT_PRODUCTION_DENY = (
    "127.0.0.0/8",
    "::1/128",
    "0.0.0.0/8",
    "169.254.0.0/16",
    "fe80::/10",
    "fd00:ec2::254/128",
    "100.100.100.200/32",
    "metadata.google.internal",
)


class HostRefused(Exception):
    """The host is not allowed; the message names it and the reason (never credentials)."""


@dataclass(frozen=True)
class HostRules:
    networks: tuple[IPNetwork, ...]
    names: tuple[str, ...]  # exact names, or suffixes starting with "."

    @classmethod
    def parse(cls, entries: list[str] | tuple[str, ...]) -> HostRules:
        networks: list[IPNetwork] = []
        names: list[str] = []
        for raw in entries:
            entry = raw.strip().lower()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                names.append(entry.rstrip("."))
        return cls(tuple(networks), tuple(names))

    def __bool__(self) -> bool:
        return bool(self.networks or self.names)

    def names_host(self, host: str) -> bool:
        return any(host == n or (n.startswith(".") and host.endswith(n)) for n in self.names)

    def holds(self, address: IPAddress) -> bool:
        return any(address.version == n.version and address in n for n in self.networks)


def _addresses(host: str) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        raise LookupError(f"cannot resolve host {host!r}: {exc}") from None
    found = []
    for info in infos:
        # An IPv6 answer may carry a zone ("fe80::1%eth0"); the zone does not change the network.
        found.append(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))
    return found


def check_host(host: str) -> None:
    """Raise HostRefused unless the operator's lists let sources connect to ``host``.

    A name that does not resolve raises LookupError.
    """
    host = host.strip("[]").lower().rstrip(".")
    allow = HostRules.parse(settings.MISIS_SOURCE_ALLOW)
    deny = HostRules.parse(settings.MISIS_SOURCE_DENY)
    if allow.names_host(host):
        return
    if deny.names_host(host):
        raise HostRefused(f"host {host} is on the deny list (MISIS_SOURCE_DENY)")
    for address in _addresses(host):
        if allow.holds(address):
            continue
        if allow:
            raise HostRefused(
                f"host {host} ({address}) is not on the allow list (MISIS_SOURCE_ALLOW)"
            )
        if deny.holds(address):
            raise HostRefused(f"host {host} ({address}) is on the deny list (MISIS_SOURCE_DENY)")


def check_url(url: str) -> None:
    """check_host for the host of a network source URL."""
    host = urlsplit(url).hostname
    if not host:
        raise HostRefused("the source names no host")
    check_host(host)


def allowed_addresses(host: str) -> list[IPAddress]:
    """The addresses of ``host`` that sources may connect to; HostRefused or LookupError otherwise.

    Interim version (branch sec-onvif) on top of check_host, which resolves the name once more:
    the host-policy branch replaces it with one that resolves once and returns what it checked.
    """
    check_host(host)
    found: list[IPAddress] = []
    for address in _addresses(host.strip("[]").lower().rstrip(".")):
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        if mapped is not None:  # Linux connects to ::ffff:a.b.c.d over IPv4, to a.b.c.d
            check_host(str(mapped))
        found.append(mapped or address)
    return found
