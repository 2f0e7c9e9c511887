"""WS-Discovery of ONVIF cameras on the operator's network (``manage.py discover_cameras``):
one Probe for NetworkVideoTransmitters, and the onvif:// source to use for each device that
answers."""

from __future__ import annotations

import logging
import socket
import time
import uuid
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit
from xml.etree import ElementTree

from sources.onvif import DEFAULT_PORT, OnvifSource

logger = logging.getLogger(__name__)

WS_DISCOVERY_ADDRESS = "239.255.255.250"
WS_DISCOVERY_PORT = 3702
_WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
_WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
_PROBE = """<?xml version="1.0" encoding="UTF-8"?>
<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope" xmlns:w="{wsa}" xmlns:d="{wsd}"
 xmlns:dn="http://www.onvif.org/ver10/network/wsdl">
<e:Header><w:MessageID>{message_id}</w:MessageID>
<w:To e:mustUnderstand="true">urn:schemas-xmlsoap-org:ws:2005:04:discovery</w:To>
<w:Action e:mustUnderstand="true">{wsd}/Probe</w:Action></e:Header>
<e:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></e:Body>
</e:Envelope>"""


@dataclass(frozen=True)
class DiscoveredCamera:
    endpoint: str  # the device's stable id, usually urn:uuid:...
    xaddrs: tuple[str, ...]  # device service URLs
    scopes: tuple[str, ...]

    def scope(self, kind: str) -> str | None:
        """A scope value such as name or hardware (onvif://www.onvif.org/name/Cam%201)."""
        prefix = f"onvif://www.onvif.org/{kind}/"
        found = next((s[len(prefix) :] for s in self.scopes if s.startswith(prefix)), None)
        return unquote(found) if found is not None else None

    @property
    def source(self) -> str | None:
        """``onvif://host:port`` of the first http XAddr (IPv4 first); add user:password@."""
        candidates = []
        for xaddr in self.xaddrs:
            try:
                parts = urlsplit(xaddr)
                port = parts.port or (443 if parts.scheme == "https" else DEFAULT_PORT)
            except ValueError:
                continue
            if parts.scheme in ("http", "https") and parts.hostname:
                candidates.append(OnvifSource("", "", parts.hostname, port, None))
        candidates.sort(key=lambda c: ":" in c.host)  # a stable sort: IPv4 before IPv6
        return f"onvif://{candidates[0].address}" if candidates else None


def discover(
    timeout: float = 3.0,
    *,
    address: str = WS_DISCOVERY_ADDRESS,
    port: int = WS_DISCOVERY_PORT,
    interface: str | None = None,
) -> list[DiscoveredCamera]:
    """Send one WS-Discovery Probe for NetworkVideoTransmitters and collect the ProbeMatches
    that arrive within ``timeout`` seconds, one entry per device."""
    message_id = f"urn:uuid:{uuid.uuid4()}"
    probe = _PROBE.format(wsa=_WSA, wsd=_WSD, message_id=message_id).encode()
    found: dict[str, DiscoveredCamera] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        # Cameras answer by unicast to the probe's source port; TTL 1 keeps the probe on
        # the local link, as WS-Discovery requires.
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        if interface:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface))
        sock.sendto(probe, (address, port))
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data, _sender = sock.recvfrom(65535)
            except TimeoutError:
                break
            except ConnectionRefusedError:  # an ICMP answer to a unicast probe
                continue
            for camera in _probe_matches(data, message_id):
                found.setdefault(camera.endpoint, camera)
    return list(found.values())


def _probe_matches(data: bytes, message_id: str) -> list[DiscoveredCamera]:
    try:
        envelope = ElementTree.fromstring(data)
    except ElementTree.ParseError:
        logger.debug("ignoring a WS-Discovery answer that is not XML")
        return []
    relates_to = envelope.findtext(f".//{{{_WSA}}}RelatesTo")
    if relates_to is not None and relates_to.strip() != message_id:
        return []  # an answer to somebody else's probe
    cameras = []
    for match in envelope.iter(f"{{{_WSD}}}ProbeMatch"):
        endpoint = (match.findtext(f"{{{_WSA}}}EndpointReference/{{{_WSA}}}Address") or "").strip()
        xaddrs = tuple((match.findtext(f"{{{_WSD}}}XAddrs") or "").split())
        scopes = tuple((match.findtext(f"{{{_WSD}}}Scopes") or "").split())
        if endpoint or xaddrs:
            cameras.append(DiscoveredCamera(endpoint or xaddrs[0], xaddrs, scopes))
    return cameras
