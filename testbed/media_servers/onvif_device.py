"""A small ONVIF device for tests: SOAP 1.2 over HTTP, Device and Media (ver10) services (their
answers in onvif_answers.py).

It answers what a client library sends while resolving a stream URI — GetSystemDateAndTime,
GetServices, GetCapabilities, GetDeviceInformation, GetProfiles, GetStreamUri — and checks
WS-Security UsernameToken digests the way cameras do, Created timestamp against its own clock
included (``clock_offset`` makes that clock wrong, as cameras' often are).

Hostile modes, for the tests of a device that attacks the runner: any stream URI is sent as
given, control characters included (as XML character references, which the client's parser
turns back into the characters); ``media_xaddr`` advertises the Media service anywhere;
``redirects`` answers an operation with a 302 to anywhere; ``bind`` serves from another
loopback address (127.0.0.2, the denied internal host).
"""

from __future__ import annotations

import base64
import hashlib
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from testbed.media_servers.onvif_answers import (
    OPERATIONS,
    SOAP_ENV,
    Fault,
    Profile,
    envelope,
)

WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DIGEST = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
    "#PasswordDigest"
)

# Operations a real device answers before authentication (ONVIF Core, "PRE_AUTH").
UNAUTHENTICATED = {"GetSystemDateAndTime"}


@dataclass
class OnvifDevice:
    """State of the fake camera; tests may change any field while it runs."""

    user: str = "admin"
    password: str = "secret"
    profiles: list[Profile] = field(default_factory=list)
    clock_offset: timedelta = timedelta(0)  # the device clock minus the real one
    max_skew: timedelta = timedelta(minutes=5)  # how old or new a Created it accepts
    get_services: bool = True  # False: an older device that only knows GetCapabilities
    bind: str = "127.0.0.1"  # the address it listens and advertises its services on
    media_xaddr: str | None = None  # the Media service address it advertises, if not its own
    redirects: dict[str, str] = field(default_factory=dict)  # operation -> 302 Location
    auth_status: int = HTTPStatus.BAD_REQUEST  # 400 or 401: cameras differ
    calls: list[str] = field(default_factory=list)  # operation names, in order received
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return self._server.server_address[1]

    @property
    def source(self) -> str:
        """The onvif:// source naming this device with its valid credentials."""
        user, password = quote(self.user, safe=""), quote(self.password, safe="")
        return f"onvif://{user}:{password}@{self.bind}:{self.port}"

    def now(self) -> datetime:
        return datetime.now(UTC) + self.clock_offset

    def record(self, operation: str) -> None:
        with self._lock:
            self.calls.append(operation)

    def set_stream_uri(self, token: str, uri: str) -> None:
        next(p for p in self.profiles if p.token == token).stream_uri = uri

    def start(self) -> OnvifDevice:
        handler = type("Handler", (_Handler,), {"device": self})
        self._server = ThreadingHTTPServer((self.bind, 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def authorized(self, header: ElementTree.Element | None) -> bool:
        """Check a UsernameToken: PasswordDigest = base64(sha1(nonce + created + password))."""
        token = (
            header.find(f"{{{WSSE}}}Security/{{{WSSE}}}UsernameToken")
            if header is not None
            else None
        )
        if token is None:
            return False
        user = token.findtext(f"{{{WSSE}}}Username", "")
        password = token.find(f"{{{WSSE}}}Password")
        nonce = token.findtext(f"{{{WSSE}}}Nonce", "")
        created = token.findtext(f"{{{WSU}}}Created", "")
        if password is None or password.get("Type") != DIGEST or user != self.user:
            return False
        try:
            raw_nonce = base64.b64decode(nonce)
            when = datetime.fromisoformat(created.replace("Z", "+00:00"))
        except ValueError:
            return False
        if when.tzinfo is None or abs(when - self.now()) > self.max_skew:
            return False
        expected = hashlib.sha1(raw_nonce + created.encode() + self.password.encode()).digest()
        return base64.b64encode(expected).decode() == (password.text or "").strip()


class _Handler(BaseHTTPRequestHandler):
    device: OnvifDevice
    protocol_version = "HTTP/1.1"  # keep-alive, like cameras and the aiohttp client

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet test output

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            envelope = ElementTree.fromstring(body)
        except ElementTree.ParseError:
            self._fault(HTTPStatus.BAD_REQUEST, "env:Sender", ("ter:WellFormed",), "Bad XML")
            return
        request = envelope.find(f"{{{SOAP_ENV}}}Body/*")
        if request is None:
            self._fault(HTTPStatus.BAD_REQUEST, "env:Sender", ("ter:WellFormed",), "No body")
            return
        namespace, _, operation = request.tag[1:].partition("}")
        device = self.device
        device.record(operation)
        if operation in device.redirects:
            self._redirect(device.redirects[operation])
            return
        if operation not in UNAUTHENTICATED and not device.authorized(
            envelope.find(f"{{{SOAP_ENV}}}Header")
        ):
            self._fault(
                device.auth_status, "env:Sender", ("ter:NotAuthorized",), "Sender not Authorized"
            )
            return
        answer = OPERATIONS.get((self.path, namespace, operation))
        if answer is None or (operation == "GetServices" and not device.get_services):
            self._fault(
                HTTPStatus.BAD_REQUEST,
                "env:Receiver",
                ("ter:ActionNotSupported",),
                "Optional Action Not Implemented",
            )
            return
        try:
            payload = answer(self, request)
        except Fault as fault:
            self._fault(HTTPStatus.BAD_REQUEST, "env:Sender", fault.subcodes, fault.reason)
            return
        self._send(HTTPStatus.OK, payload)

    @property
    def base_url(self) -> str:
        # Cameras advertise XAddrs on the address they were reached at.
        return f"http://{self.device.bind}:{self.device.port}"

    def _redirect(self, location: str) -> None:
        self.send_response(HTTPStatus.FOUND)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send(self, status: int, body: str) -> None:
        data = envelope(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/soap+xml; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _fault(self, status: int, code: str, subcodes: tuple[str, ...], reason: str) -> None:
        """A SOAP 1.2 fault; ONVIF Core 5.11 nests its ter: codes as subcodes of the code."""
        nested = ""
        for subcode in reversed(subcodes):
            nested = f"<env:Subcode><env:Value>{subcode}</env:Value>{nested}</env:Subcode>"
        self._send(
            status,
            f"<env:Fault><env:Code><env:Value>{code}</env:Value>{nested}</env:Code>"
            f"<env:Reason><env:Text xml:lang='en'>{escape(reason)}</env:Text></env:Reason>"
            "</env:Fault>",
        )
