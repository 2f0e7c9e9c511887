"""Webhooks survive a kill -9 of the worker that delivers them: a receiver that takes its time
to answer keeps deliveries in flight, the orchestrator worker (which runs
scenarios.deliver_event) dies mid-POST, and once it is started again every event is delivered,
each counted delivered once; a receiver sees an event twice only when its answer came too late
(the POST was in flight when the worker died)."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.contrib.auth.models import User

from misis.metrics import COUNTERS_KEY
from misis.redis_client import get_redis
from scenarios.models import Event, Scenario, Status
from scenarios.services import commands
from testbed.stack import Stack, wait_for

pytestmark = pytest.mark.integration
SECRET = "kill-webhook-secret"
STALL = 3.0  # seconds each answer waits: under MISIS_WEBHOOK_TIMEOUT, long enough to kill in
DWELLS = (1, 2, 3, 4, 5, 6)
# The mock detector's person box stands still with its anchor at (0.5, 0.75): each zone around
# it gives an enter once the track is confirmed and a dwell after its seconds, 12 events.
ZONES = [
    {"name": f"z{d}", "polygon": [[0.2, 0.5], [0.8, 0.5], [0.8, 0.9], [0.2, 0.9]], "dwell": d}
    for d in DWELLS
]


class SlowReceiver:
    """Records each signed delivery on arrival, then stalls before answering 200."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[str] = []  # event ids, in arrival order, duplicates included
        self.answered: set[int] = set()  # indexes into ``received`` whose answer was sent
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                mac = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(mac, self.headers["X-Misis-Signature"]):
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                with receiver.lock:
                    receiver.received.append(json.loads(body)["id"])
                    index = len(receiver.received) - 1
                time.sleep(STALL)
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    return  # the sender is gone
                with receiver.lock:
                    receiver.answered.add(index)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def in_flight(self) -> set[str]:
        with self.lock:
            return {e for i, e in enumerate(self.received) if i not in self.answered}


@pytest.fixture
def receiver() -> Iterator[SlowReceiver]:
    r = SlowReceiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def delivered_count() -> float:
    return float(get_redis().hget(COUNTERS_KEY, "webhook_delivered") or 0)


def test_kill_9_of_the_delivering_worker_loses_no_webhook(
    live: Stack, receiver: SlowReceiver, django_user_model: type[User]
) -> None:
    owner = django_user_model.objects.create_user(username="hooks")
    before = delivered_count()
    params = {"zones": ZONES, "webhook": {"url": receiver.url, "secret": SECRET}}
    sid = str(commands.scenario_create(owner=owner, source="long.mp4", params=params).pk)
    # Kill while at least two POSTs wait for their answer.
    wait_for(lambda: len(receiver.in_flight()) >= 2, 60, what="deliveries in flight")
    live.signal("orchestrator", signal.SIGKILL)
    live.procs["orchestrator"].wait(10)
    in_flight = receiver.in_flight()  # POSTs whose answer the dead worker can no longer read
    assert in_flight
    time.sleep(1)  # the supervisor notices and starts it again
    live.ensure_running()

    wait_for(
        lambda: Scenario.objects.get(pk=sid).status == Status.INACTIVE, 120, what="end of file"
    )
    ids = {str(pk) for pk in Event.objects.filter(scenario_id=sid).values_list("pk", flat=True)}
    assert len(ids) == 2 * len(DWELLS)
    # An in-flight event waits out its lease (MISIS_WEBHOOK_TIMEOUT + 5 s) before the relay
    # sends it again.
    wait_for(
        lambda: (
            set(Event.objects.filter(scenario_id=sid).values_list("webhook", flat=True))
            == {"delivered"}
        ),
        90,
        interval=0.5,
        what="every event delivered",
    )
    time.sleep(STALL + 1)  # let any answer still stalling finish, then count
    assert set(receiver.received) == ids
    twice = {e for e, n in Counter(receiver.received).items() if n > 1}
    assert twice <= in_flight, "a copy of an event whose answer had arrived"
    assert delivered_count() - before == len(ids)  # counted delivered once each
    print(f"\n{len(ids)} events, {len(in_flight)} in flight at the kill, {len(twice)} twice")
