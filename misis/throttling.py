"""Rate limits as fixed-window counters in Redis: O(1) a request.

DRF's own throttles keep every request time of the window in the cache and (un)pickle that
list on each request; at thousands of requests a minute that cost milliseconds a request.
Here each request is one INCR (plus an EXPIRE on the window's first) on a shared Redis, so the
limits hold across API processes and machines.

Anonymous requests are counted by client address (``client_address``): the peer's address,
or with ``MISIS_NUM_PROXIES`` = N > 0 the address the N-th proxy from us wrote into
X-Forwarded-For. With N = 0 (the default) X-Forwarded-For is ignored: anyone may write it.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from misis import keys
from misis.redis_client import get_redis

logger = logging.getLogger(__name__)


def client_address(request: HttpRequest | Request) -> str:
    """The client's address as far as our own proxies vouch for it (MISIS_NUM_PROXIES)."""
    meta = request.META
    remote = str(meta.get("REMOTE_ADDR") or "")
    num_proxies = api_settings.NUM_PROXIES or 0
    xff = meta.get("HTTP_X_FORWARDED_FOR")
    if num_proxies <= 0 or not xff:
        return remote
    # Each proxy appends the address it saw: the right-most entries are ours, the left-most
    # are whatever the client wrote.
    addrs = [a.strip() for a in str(xff).split(",")]
    return addrs[-min(num_proxies, len(addrs))] or remote


def parse_rate(rate: str) -> tuple[int, int]:
    """``"10/min"`` -> (10, 60): DRF's rate syntax (the unit's first letter: s, m, h, d)."""
    num, period = rate.split("/")
    return int(num), {"s": 1, "m": 60, "h": 3600, "d": 86400}[period.strip()[0]]


def hit(scope: str, ident: str, num_requests: int, duration: float) -> float | None:
    """Count one request of ``ident`` in ``scope``: None when allowed, else seconds to wait."""
    now = time.time()
    window = int(now // duration)
    key = keys.throttle(scope, ident, window)
    pipe = get_redis().pipeline(transaction=False)
    pipe.incr(key)
    pipe.expire(key, int(duration) + 1, nx=True)
    count, _ = pipe.execute()
    if int(count) <= num_requests:
        return None
    return max((window + 1) * duration - now, 0.0)


class _RedisWindowThrottle(SimpleRateThrottle):
    # Set by SimpleRateThrottle.__init__ from the rate; absent from the DRF stubs.
    num_requests: int | None
    duration: int | None
    scope: str
    wait_s: float | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        if self.rate is None:
            return True
        ident = self.get_cache_key(request, view)
        if ident is None:
            return True
        assert self.num_requests is not None and self.duration is not None
        self.wait_s = hit(self.scope, ident, self.num_requests, self.duration)
        return self.wait_s is None

    def get_ident(self, request: Request) -> str:
        return client_address(request)

    def wait(self) -> float | None:
        return self.wait_s


class UserThrottle(_RedisWindowThrottle):
    scope = "user"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if request.user is not None and request.user.is_authenticated:
            return f"u{request.user.pk}"
        return f"ip{self.get_ident(request)}"


class AnonThrottle(_RedisWindowThrottle):
    scope = "anon"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if request.user is not None and request.user.is_authenticated:
            return None
        return f"ip{self.get_ident(request)}"


def login_attempt_wait(request: HttpRequest) -> float | None:
    """Count one login attempt (MISIS_THROTTLE_LOGIN) by client address and by username.

    None when both are within the rate, else the seconds to wait. Both counters count every
    attempt: one address guessing many usernames and many addresses guessing one password are
    both held back. The flip side: anyone can hold a username back for one window, which is
    the price of a guessing limit that a botnet cannot spread out.
    """
    num_requests, duration = parse_rate(settings.MISIS_THROTTLE_LOGIN)
    username = str(request.POST.get("username", ""))
    # Hashed: a key of bounded length, and no typed-in (maybe mistyped password) text in Redis.
    user_ident = hashlib.sha256(username.encode("utf-8", "replace")).hexdigest()[:32]
    waits = [
        hit("login-ip", client_address(request), num_requests, duration),
        hit("login-user", user_ident, num_requests, duration),
    ]
    refused = [w for w in waits if w is not None]
    return max(refused) if refused else None


def login_throttled(request: HttpRequest, form: str) -> HttpResponse | None:
    """Count a login attempt on ``form`` (the admin's, the dashboard's); a 429 with
    ``Retry-After`` when it is one too many, else None."""
    wait = login_attempt_wait(request)
    if wait is None:
        return None
    logger.warning("%s login throttled for %s", form, client_address(request))
    response = HttpResponse(
        "Too many login attempts; try again later.\n",
        status=429,
        content_type="text/plain; charset=utf-8",
    )
    response["Retry-After"] = str(max(1, math.ceil(wait)))
    return response
