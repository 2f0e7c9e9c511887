"""The SOAP answers of the fake ONVIF device (onvif_device.py): Device and Media (ver10)
operations by (path, namespace, name), the envelope around them, and the camera's profiles.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from xml.etree import ElementTree
from xml.sax.saxutils import escape

if TYPE_CHECKING:
    from testbed.media_servers.onvif_device import _Handler as Handler

SOAP_ENV = "http://www.w3.org/2003/05/soap-envelope"
TDS = "http://www.onvif.org/ver10/device/wsdl"
TRT = "http://www.onvif.org/ver10/media/wsdl"
DEVICE_PATH = "/onvif/device_service"
MEDIA_PATH = "/onvif/media_service"


@dataclass
class Profile:
    token: str
    name: str
    stream_uri: str
    video: bool = True  # False: an audio-only or metadata profile, no video encoder


class Fault(Exception):
    """A SOAP fault an answer gives instead (ONVIF ter: subcodes, a reason)."""

    def __init__(self, subcodes: tuple[str, ...], reason: str) -> None:
        super().__init__(reason)
        self.subcodes, self.reason = subcodes, reason


def envelope(body: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<env:Envelope xmlns:env="{SOAP_ENV}" xmlns:tds="{TDS}" xmlns:trt="{TRT}" '
        'xmlns:tt="http://www.onvif.org/ver10/schema" '
        'xmlns:ter="http://www.onvif.org/ver10/error">'
        f"<env:Body>{body}</env:Body></env:Envelope>"
    )


def _text(value: str) -> str:
    """XML text that carries ``value`` exactly: a parser normalises a literal CR LF to LF and
    would keep a tab or newline only as a character reference."""
    return "".join(f"&#{ord(c)};" if ord(c) < 0x20 else c for c in escape(value))


def _date_time(when: datetime) -> str:
    return (
        f"<tt:Time><tt:Hour>{when.hour}</tt:Hour><tt:Minute>{when.minute}</tt:Minute>"
        f"<tt:Second>{when.second}</tt:Second></tt:Time>"
        f"<tt:Date><tt:Year>{when.year}</tt:Year><tt:Month>{when.month}</tt:Month>"
        f"<tt:Day>{when.day}</tt:Day></tt:Date>"
    )


def _system_date_and_time(handler: Handler, request: ElementTree.Element) -> str:
    now = handler.device.now()
    return (
        "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
        "<tt:DateTimeType>Manual</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings>"
        "<tt:TimeZone><tt:TZ>UTC0</tt:TZ></tt:TimeZone>"
        f"<tt:UTCDateTime>{_date_time(now)}</tt:UTCDateTime>"
        f"<tt:LocalDateTime>{_date_time(now)}</tt:LocalDateTime>"
        "</tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
    )


def _device_information(handler: Handler, request: ElementTree.Element) -> str:
    return (
        "<tds:GetDeviceInformationResponse><tds:Manufacturer>MISIS</tds:Manufacturer>"
        "<tds:Model>FakeCam 1</tds:Model><tds:FirmwareVersion>1.0.0</tds:FirmwareVersion>"
        "<tds:SerialNumber>0001</tds:SerialNumber><tds:HardwareId>1</tds:HardwareId>"
        "</tds:GetDeviceInformationResponse>"
    )


def _media_xaddr(handler: Handler) -> str:
    return handler.device.media_xaddr or f"{handler.base_url}{MEDIA_PATH}"


def _services(handler: Handler, request: ElementTree.Element) -> str:
    xaddrs = ((TDS, f"{handler.base_url}{DEVICE_PATH}"), (TRT, _media_xaddr(handler)))
    services = "".join(
        f"<tds:Service><tds:Namespace>{ns}</tds:Namespace>"
        f"<tds:XAddr>{_text(xaddr)}</tds:XAddr>"
        "<tds:Version><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version></tds:Service>"
        for ns, xaddr in xaddrs
    )
    return f"<tds:GetServicesResponse>{services}</tds:GetServicesResponse>"


def _capabilities(handler: Handler, request: ElementTree.Element) -> str:
    return (
        "<tds:GetCapabilitiesResponse><tds:Capabilities>"
        f"<tt:Device><tt:XAddr>{handler.base_url}{DEVICE_PATH}</tt:XAddr></tt:Device>"
        f"<tt:Media><tt:XAddr>{_text(_media_xaddr(handler))}</tt:XAddr>"
        "<tt:StreamingCapabilities><tt:RTPMulticast>false</tt:RTPMulticast>"
        "<tt:RTP_TCP>true</tt:RTP_TCP><tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP>"
        "</tt:StreamingCapabilities></tt:Media>"
        "</tds:Capabilities></tds:GetCapabilitiesResponse>"
    )


def _profile(profile: Profile) -> str:
    source = (
        "<tt:VideoSourceConfiguration token='vsc0'><tt:Name>VideoSource</tt:Name>"
        "<tt:UseCount>2</tt:UseCount><tt:SourceToken>vs0</tt:SourceToken>"
        "<tt:Bounds x='0' y='0' width='1920' height='1080'/></tt:VideoSourceConfiguration>"
    )
    encoder = (
        f"<tt:VideoEncoderConfiguration token='vec_{escape(profile.token)}'>"
        "<tt:Name>VideoEncoder</tt:Name><tt:UseCount>1</tt:UseCount>"
        "<tt:Encoding>H264</tt:Encoding>"
        "<tt:Resolution><tt:Width>1920</tt:Width><tt:Height>1080</tt:Height></tt:Resolution>"
        "<tt:Quality>5</tt:Quality><tt:RateControl><tt:FrameRateLimit>25</tt:FrameRateLimit>"
        "<tt:EncodingInterval>1</tt:EncodingInterval><tt:BitrateLimit>4096</tt:BitrateLimit>"
        "</tt:RateControl><tt:H264><tt:GovLength>50</tt:GovLength>"
        "<tt:H264Profile>Main</tt:H264Profile></tt:H264>"
        "<tt:Multicast><tt:Address><tt:Type>IPv4</tt:Type>"
        "<tt:IPv4Address>0.0.0.0</tt:IPv4Address></tt:Address><tt:Port>0</tt:Port>"
        "<tt:TTL>1</tt:TTL><tt:AutoStart>false</tt:AutoStart></tt:Multicast>"
        "<tt:SessionTimeout>PT60S</tt:SessionTimeout></tt:VideoEncoderConfiguration>"
    )
    return (
        f"<trt:Profiles token='{escape(profile.token)}' fixed='true'>"
        f"<tt:Name>{escape(profile.name)}</tt:Name>"
        f"{source}{encoder if profile.video else ''}</trt:Profiles>"
    )


def _profiles(handler: Handler, request: ElementTree.Element) -> str:
    body = "".join(_profile(p) for p in handler.device.profiles)
    return f"<trt:GetProfilesResponse>{body}</trt:GetProfilesResponse>"


def _stream_uri(handler: Handler, request: ElementTree.Element) -> str:
    token = request.findtext(f"{{{TRT}}}ProfileToken", "")
    profile = next((p for p in handler.device.profiles if p.token == token), None)
    if profile is None:
        raise Fault(("ter:InvalidArgVal", "ter:NoProfile"), "The profile does not exist")
    if not profile.video:
        raise Fault(
            ("ter:Action", "ter:IncompleteConfiguration"), "The profile has no video encoder"
        )
    return (
        "<trt:GetStreamUriResponse><trt:MediaUri>"
        f"<tt:Uri>{_text(profile.stream_uri)}</tt:Uri>"
        "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>"
        "<tt:InvalidAfterReboot>false</tt:InvalidAfterReboot><tt:Timeout>PT60S</tt:Timeout>"
        "</trt:MediaUri></trt:GetStreamUriResponse>"
    )


OPERATIONS = {
    (DEVICE_PATH, TDS, "GetSystemDateAndTime"): _system_date_and_time,
    (DEVICE_PATH, TDS, "GetDeviceInformation"): _device_information,
    (DEVICE_PATH, TDS, "GetServices"): _services,
    (DEVICE_PATH, TDS, "GetCapabilities"): _capabilities,
    (MEDIA_PATH, TRT, "GetProfiles"): _profiles,
    (MEDIA_PATH, TRT, "GetStreamUri"): _stream_uri,
}


STREAM_URI = "rtsp://127.0.0.1:8554/test"


def default_profiles(stream_uri: str = STREAM_URI) -> list[Profile]:
    # Audio-only listed first, so that "the first profile with a video encoder" is exercised.
    return [
        Profile("audio", "AudioOnly", stream_uri + "/audio", video=False),
        Profile("main", "MainStream", stream_uri),
        Profile("sub", "SubStream", stream_uri + "/sub"),
    ]
