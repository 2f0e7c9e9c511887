"""The ONVIF client, confined to the host policy: onvif-zeep-async's ONVIFCamera whose SOAP
requests follow no redirect and connect only to addresses that sources.hosts allows.

A camera is the user's choice and may be hostile: it names the Media service address, and may
answer any request with a redirect. The library builds one aiohttp session per service, which
follows redirects and connects anywhere; GuardedCamera hands each service's transport a session
of its own instead, whose checks run at connect time: the resolver returns only allowed
addresses (the answer that was checked is the one connected to), and a middleware checks the
host of every request, redirect hops and IP literals (which aiohttp never resolves) included.

Imported only when a source is resolved (sources/onvif.py): importing onvif calls
``logging.basicConfig`` and loads zeep, which the API process needs not.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from onvif import ONVIFCamera
from onvif.client import ONVIFService

from sources.hosts import allowed_addresses

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

# ONVIFCamera() pops http_proxy/https_proxy from os.environ, for the whole process; aiohttp
# ignores them anyway (trust_env=False), so put them back for boto3 and friends.
_PROXY_VARS = ("http_proxy", "https_proxy")
_env_lock = threading.Lock()


class RedirectRefused(Exception):
    """The device answered a SOAP request with a redirect, which is not followed."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class PolicyResolver(AbstractResolver):
    """Resolves a name to the addresses sources.hosts allows, or raises HostRefused/LookupError.

    aiohttp connects to what this returns, so the addresses checked are the ones connected to:
    a name whose DNS answer changes between a check and the connection gains nothing.
    """

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await asyncio.to_thread(allowed_addresses, host)
        results: list[ResolveResult] = []
        for address in addresses:
            found = socket.AF_INET6 if address.version == 6 else socket.AF_INET
            if family not in (socket.AF_UNSPEC, found):
                continue
            results.append(
                {
                    "hostname": host,
                    "host": str(address),
                    "port": port,
                    "family": found,
                    "proto": socket.IPPROTO_TCP,
                    "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                }
            )
        if not results:
            raise OSError(f"host {host} has no allowed address of the family asked for")
        return results

    async def close(self) -> None:
        pass


async def policy_middleware(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    """Check each request's host before it is sent, and refuse a redirect instead of
    following it. aiohttp calls this for every hop, and connects to an IP literal without
    asking the resolver: this is the check for those."""
    host = request.url.raw_host or ""
    await asyncio.to_thread(allowed_addresses, host)
    response = await handler(request)
    if response.status in REDIRECT_STATUSES:
        response.release()
        raise RedirectRefused(response.status)
    return response


def policy_session(timeout: aiohttp.ClientTimeout) -> aiohttp.ClientSession:
    """A session that connects only where the host policy allows and follows no redirect."""
    connector = aiohttp.TCPConnector(
        resolver=PolicyResolver(),
        use_dns_cache=False,  # every connection is checked afresh
        ssl=False,  # cameras carry self-signed certificates; the library does not verify either
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        middlewares=(policy_middleware,),
        trust_env=False,
    )


class GuardedCamera(ONVIFCamera):  # type: ignore[misc]  # onvif ships no types: Any
    """ONVIFCamera whose services talk through policy sessions (see the module docstring).

    Every service (the device management service, recreated once the clock offset is known,
    and the Media service) is built by create_onvif_service: the policy session replaces the
    transport's session there, before any request is sent. The library's own session is never
    used; the service closes it as before. (get_snapshot has a session of its own, unguarded:
    never call it on a user's camera.)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._policy_sessions: list[aiohttp.ClientSession] = []

    async def create_onvif_service(
        self,
        name: str,
        port_type: str | None = None,
        read_timeout: int | None = None,
        write_timeout: int | None = None,
    ) -> ONVIFService:
        service = await super().create_onvif_service(name, port_type, read_timeout, write_timeout)
        transport = service.transport
        if transport.session not in self._policy_sessions:
            transport.session = policy_session(transport.session.timeout)
            self._policy_sessions.append(transport.session)
        return service

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            for session in self._policy_sessions:
                await session.close()


def guarded_camera(host: str, port: int, user: str, password: str) -> GuardedCamera:
    with _env_lock:
        saved = {name: os.environ[name] for name in _PROXY_VARS if name in os.environ}
        try:
            return GuardedCamera(
                host,
                port,
                # Not None: zeep cannot sign a token without a user; a camera that allows
                # anonymous access ignores an empty one.
                user,
                password,
                # The bundled WSDLs are read from the package; zeep's SQLite cache is for remote
                # documents, which are never fetched, and its shared asyncio.Lock would be bound
                # to the first thread's event loop.
                no_cache=True,
                # Cameras reject WS-Security timestamps off their own clock: GetSystemDateAndTime
                # first, and sign every request with the camera's time.
                adjust_time=True,
            )
        finally:
            os.environ.update(saved)
