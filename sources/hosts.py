"""Which hosts network sources may reach: built-in denials plus the operator's allow/deny lists.

A scenario's source is a URL that the runner, inside the operator's network, connects to; left
open, any API user could point it at the cloud metadata service or at internal admin ports.

Three layers, checked for every address a host resolves to:

* ``BUILTIN_DENY`` (every environment) and ``LOOPBACK_DENY`` (production: the setting
  ``MISIS_SOURCE_DENY_LOOPBACK``): never overridable, not even by ``MISIS_SOURCE_ALLOW``.
* ``MISIS_SOURCE_DENY``: the operator's additions; a deny entry beats an allow entry.
* ``MISIS_SOURCE_ALLOW``: when set, every address must be in it (or the host named by it).

Operator entries are IP networks (``10.0.0.0/8``, ``::1``), exact host names
(``cam1.example.com``) or domain suffixes (``.cams.example.com``).

Addresses are normalised before matching: an IPv4-mapped IPv6 address (``::ffff:a.b.c.d``, which
Linux connects to over IPv4) is that IPv4 address, and an IPv6 address that embeds an IPv4 one
(IPv4-translated, IPv4-compatible, 6to4, Teredo, NAT64) is matched as the embedded address too.
A host that a resolver reads as an IPv4 address but that is not written in dotted-quad form
(``2130706433``, ``0x7f.1``, ``0177.0.0.1``: getaddrinfo accepts them, ``ipaddress`` does not)
is refused outright rather than guessed at.

``allowed_addresses`` resolves once and returns the checked addresses, so that callers connect
to exactly what was checked (a second resolution could answer differently: DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Denied in every environment, whatever the operator's lists say: the one place these live.
# Keyed by the reason a refusal gives. Metadata first, so that 169.254.169.254 is named as such.
BUILTIN_DENY: dict[str, tuple[str, ...]] = {
    "a cloud metadata service": (
        "169.254.169.254/32",  # AWS, GCP, Azure, OpenStack, Oracle, DigitalOcean...
        "fd00:ec2::254/128",  # AWS over IPv6
        "100.100.100.200/32",  # Alibaba Cloud
        "168.63.129.16/32",  # Azure WireServer
        "192.0.0.192/32",  # Oracle Cloud Classic
        "metadata.google.internal",
        "metadata.goog",
        "metadata",
        "instance-data",
        "instance-data.ec2.internal",
    ),
    "link-local": ("169.254.0.0/16", "fe80::/10"),
    "unspecified ('this network')": ("0.0.0.0/8", "::/128"),
    "multicast": ("224.0.0.0/4", "ff00::/8"),
    "reserved or broadcast": ("240.0.0.0/4",),
}
# Denied too when settings.MISIS_SOURCE_DENY_LOOPBACK is on (production): the runner's own
# machine. Test and local settings leave it off; their media servers listen on 127.0.0.1.
LOOPBACK_DENY: dict[str, tuple[str, ...]] = {
    "loopback": ("127.0.0.0/8", "::1/128", "localhost", ".localhost"),
}

_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # RFC 2765 (SIIT)
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # RFC 4291, deprecated
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215
# Where RFC 6052 puts the IPv4 address for the prefix lengths 64:ff9b:1::/48 can hold: bit
# ranges of the 128-bit address (bits 64-71 are always skipped).
_NAT64_LOCAL_LAYOUTS = (((48, 64), (72, 88)), ((56, 64), (72, 96)), ((72, 104),), ((96, 128),))


class HostRefused(Exception):
    """The host is not allowed; the message names it and the rule (never credentials)."""


@dataclass(frozen=True)
class HostRules:
    networks: tuple[tuple[IPNetwork, str], ...]  # (network, why)
    names: tuple[tuple[str, str], ...]  # (exact name, or suffix starting with ".", why)

    @classmethod
    def parse(cls, entries: Iterable[str], why: str) -> HostRules:
        networks: list[tuple[IPNetwork, str]] = []
        names: list[tuple[str, str]] = []
        for raw in entries:
            entry = raw.strip().lower()
            if not entry:
                continue
            try:
                networks.append((ipaddress.ip_network(entry, strict=False), why))
            except ValueError:
                names.append((_ascii_name(entry.rstrip(".")) or entry, why))
        return cls(tuple(networks), tuple(names))

    @classmethod
    def parse_groups(cls, groups: dict[str, tuple[str, ...]]) -> HostRules:
        rules = cls((), ())
        for why, entries in groups.items():
            rules = rules + cls.parse(entries, why)
        return rules

    def __add__(self, other: HostRules) -> HostRules:
        return HostRules(self.networks + other.networks, self.names + other.names)

    def __bool__(self) -> bool:
        return bool(self.networks or self.names)

    def naming(self, host: str) -> str | None:
        """Why the rules name ``host`` (exactly or by suffix), or None."""
        for name, why in self.names:
            if host == name or (name.startswith(".") and host.endswith(name)):
                return why
        return None

    def holding(self, addresses: Iterable[IPAddress]) -> tuple[IPAddress, str] | None:
        """The first of ``addresses`` in one of the networks, and why; or None."""
        for address in addresses:
            for network, why in self.networks:
                if address.version == network.version and address in network:
                    return address, why
        return None


def _ascii_name(name: str) -> str | None:
    """The name as the resolver sees it (socket.getaddrinfo encodes with the "idna" codec)."""
    if name.isascii():
        return name
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return None


_BUILTIN = HostRules.parse_groups(BUILTIN_DENY)
_LOOPBACK = HostRules.parse_groups(LOOPBACK_DENY)


def _bits(value: int, start: int, end: int) -> int:
    return (value >> (128 - end)) & ((1 << (end - start)) - 1)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address ``address`` carries, by the transition mechanisms that route to it."""
    value = int(address)
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address in _IPV4_TRANSLATED or address in _NAT64_WELL_KNOWN:
        found.append(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    if address in _IPV4_COMPATIBLE and value > 1:  # not :: or ::1, which are not IPv4 at all
        found.append(ipaddress.IPv4Address(value))
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)  # (server, client)
    if address in _NAT64_LOCAL:
        # The prefix length is the operator's choice: take every layout it may have used.
        for layout in _NAT64_LOCAL_LAYOUTS:
            embedded = 0
            for start, end in layout:
                embedded = (embedded << (end - start)) | _bits(value, start, end)
            found.append(ipaddress.IPv4Address(embedded))
    return found


def _forms(address: IPAddress) -> tuple[IPAddress, list[IPAddress]]:
    """(the address to connect to, every form of it to match against the rules)."""
    if address.version == 6 and address.scope_id:
        address = ipaddress.IPv6Address(str(address).split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        # Linux sends to an IPv4-mapped address over IPv4: connect to (and report) the IPv4.
        mapped = address.ipv4_mapped
        connect: IPAddress = mapped if mapped is not None else address
        return connect, [connect, address, *embedded]
    return address, [address]


def _non_standard_ipv4(host: str) -> bool:
    """Whether a resolver would read ``host`` as an IPv4 address that ipaddress does not parse."""
    try:
        socket.inet_aton(host)
    except (OSError, ValueError):
        return False
    return True


def _resolve(host: str) -> list[IPAddress]:
    """The addresses of ``host`` (a normalised name, not an IP literal), in resolver order."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        raise LookupError(f"cannot resolve host {host!r}: {exc}") from None
    found = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not found:
        raise LookupError(f"cannot resolve host {host!r}: no address")
    return found


def _normalise_host(host: str) -> tuple[str, IPAddress | None]:
    """(the host as resolvers see it, its address when it is an IP literal)."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if not name:
        raise HostRefused("the source names no host")
    if "%" in name:
        # An IPv6 zone ("fe80::1%eth0") or percent-encoding, which clients decode differently.
        raise HostRefused(f"host {name} holds a '%' (zone index or percent-encoding)")
    try:
        return name, ipaddress.ip_address(name)
    except ValueError:
        pass
    ascii_name = _ascii_name(name)
    if ascii_name is None:
        raise LookupError(f"cannot resolve host {name!r}: not a valid host name")
    try:
        literal = ipaddress.ip_address(ascii_name)
    except ValueError:
        literal = None
    if literal is not None or _non_standard_ipv4(ascii_name):
        # "2130706433", "0x7f.1", "0177.0.0.1", "127.1", fullwidth digits (IDNA maps them to
        # ASCII): each resolves to an IPv4 address. Only the standard form is accepted, so that
        # every reader of the URL agrees on the address.
        raise HostRefused(
            f"host {name} is an IP address in a non-standard form; write it as a dotted quad"
        )
    return ascii_name, None


def _builtin_rules() -> HostRules:
    if settings.MISIS_SOURCE_DENY_LOOPBACK:
        return _BUILTIN + _LOOPBACK
    return _BUILTIN


def allowed_addresses(host: str) -> list[IPAddress]:
    """The addresses to connect to for ``host``, every one of them checked.

    Resolves once (an IP literal without DNS, a name through getaddrinfo) and returns the
    addresses in resolver order, an IPv4-mapped one as its IPv4 address. Connect to these, not
    to the name: a second resolution may answer differently. Raises HostRefused (the message
    names the host and the rule) or LookupError (the name does not resolve).
    """
    name, literal = _normalise_host(host)
    builtin = _builtin_rules()
    allow = HostRules.parse(settings.MISIS_SOURCE_ALLOW, "")
    deny = HostRules.parse(settings.MISIS_SOURCE_DENY, "")
    why = builtin.naming(name)
    if why is not None:
        raise HostRefused(f"host {name} is on the built-in deny list: {why}")
    if deny.naming(name) is not None:
        raise HostRefused(f"host {name} is on the deny list (MISIS_SOURCE_DENY)")
    named = allow.naming(name) is not None
    if allow and not named and not allow.networks:
        raise HostRefused(f"host {name} is not on the allow list (MISIS_SOURCE_ALLOW)")
    found: list[IPAddress] = []
    for address in [literal] if literal is not None else _resolve(name):
        connect, forms = _forms(address)
        shown = f"{name} ({address})" if str(address) != name else name
        hit = builtin.holding(forms)
        if hit is not None:
            via = f", as {hit[0]}" if hit[0] != address else ""
            raise HostRefused(f"host {shown} is on the built-in deny list: {hit[1]}{via}")
        hit = deny.holding(forms)
        if hit is not None:
            via = f", as {hit[0]}" if hit[0] != address else ""
            raise HostRefused(f"host {shown} is on the deny list (MISIS_SOURCE_DENY){via}")
        if allow and not named and allow.holding(forms) is None:
            raise HostRefused(f"host {shown} is not on the allow list (MISIS_SOURCE_ALLOW)")
        if connect not in found:
            found.append(connect)
    return found


def check_host(host: str) -> None:
    """Raise HostRefused unless sources may connect to ``host`` (LookupError: no address)."""
    allowed_addresses(host)


def check_url(url: str) -> None:
    """check_host for the host of a network source URL."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        raise HostRefused("the source URL is malformed") from None
    if not host:
        raise HostRefused("the source names no host")
    check_host(host)
