"""The publishes of all the scenarios of a runner process, written many to a transaction.

At 1 fps a process with 250 scenarios publishes 250 times a second. One transaction each meant
250 pooled connections asked for a second (8 in the pool), 250 commits, and hundreds of threads
holding a connection while they waited for the GIL; at 500 scenarios the threads starved
waiting for the pool and the runners fell over (README, Scale). Here a publish that arrives
while another is being written waits, and the next writer writes everything waiting together
(``runner_publish_many``: one UPDATE for all their scenario rows, one INSERT for all their
predictions, one commit, one connection).

No thread of its own (flat combining): the publishing thread that finds no write in progress
writes what is queued, itself included; when it is done the first still waiting becomes the
next writer. A lone scenario writes alone and at once, as before. The writer first renews the
leases of the batch, all in one Redis round trip (not one a publish), and writes only the
publishes whose lease it renewed: the others are refused with ``LeaseLost`` and write nothing,
as when each runner renewed its own. Each publish gets its own answer: its scenario's status or
its own refusal (``LeaseLost``, ``IntegrityError``). When the shared transaction fails (a
database restart, a row a constraint refuses), each of its publishes is written again alone,
so one scenario's failure stays its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import close_old_connections, connection

from misis.lease import Lease, renew_all
from scenarios.services.runner_writes import PublishRequest, runner_publish_many

logger = logging.getLogger(__name__)

WriteMany = Callable[[list[PublishRequest]], list[str | Exception]]

MAX_BATCH = 250  # publishes a transaction at most (one statement's parameters: 19 each)


@dataclass(eq=False)
class _Waiting:
    request: PublishRequest
    lease: Lease  # renewed by the writer just before the write
    done: threading.Event = field(default_factory=threading.Event)
    writer: bool = False  # this thread writes the next batch
    outcome: str | Exception | None = None


class PublishQueue:
    """The process's publishes waiting for a transaction; ``publish`` blocks until its own is
    written (or refused) and returns the status, like ``runner_publish``."""

    def __init__(self, write_many: WriteMany = runner_publish_many, max_batch: int = MAX_BATCH):
        self._write_many = write_many
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Waiting] = []
        self._writing = False
        self.transactions = 0  # shared transactions committed or tried, for benches and tests
        self.published = 0

    def waiting(self) -> int:
        """Publishes queued and not yet taken into a transaction."""
        with self._lock:
            return len(self._queue)

    def publish(self, request: PublishRequest, lease: Lease) -> str:
        """Renew ``lease`` (else ``LeaseLost``), then write ``request``: its scenario's status."""
        me = _Waiting(request, lease)
        with self._lock:
            self._queue.append(me)
            if not self._writing:
                self._writing = me.writer = True
        if not me.writer:
            # A connection this thread holds goes back to the pool first: the writer may need
            # it (8 threads waiting here with the pool's 8 would leave the writer none).
            if not connection.in_atomic_block:
                connection.close()
            me.done.wait()  # written by another thread, or made the next writer
        if me.writer:
            self._write_queued()
        if isinstance(me.outcome, Exception):
            raise me.outcome
        assert me.outcome is not None
        return me.outcome

    def _write_queued(self) -> None:
        """Write a batch from the head of the queue (this thread's own publish is its head),
        then hand the writing on to the head of what is left."""
        with self._lock:
            batch: list[_Waiting] = []
            later: list[_Waiting] = []
            scenarios: set[str] = set()
            for waiting in self._queue:
                key = str(waiting.request.scenario_id)
                # One publish per scenario a statement: a second (an old epoch's runner still
                # winding down in this process) goes into the next one.
                if key in scenarios or len(batch) >= self.max_batch:
                    later.append(waiting)
                else:
                    scenarios.add(key)
                    batch.append(waiting)
            self._queue = later
        try:
            held = self._renew(batch)
            outcomes = self._write([w.request for w in held]) if held else []
            for waiting, outcome in zip(held, outcomes, strict=True):
                waiting.outcome = outcome
        finally:
            for waiting in batch:
                if waiting.outcome is None:  # the writer itself was interrupted
                    waiting.outcome = RuntimeError("publish abandoned: its writer stopped")
                waiting.done.set()
            with self._lock:
                if self._queue:
                    head = self._queue[0]
                    head.writer = True
                    head.done.set()
                else:
                    self._writing = False

    def _renew(self, batch: list[_Waiting]) -> list[_Waiting]:
        """The publishes whose lease is renewed; the others get their refusal (``LeaseLost``,
        or every one of them the error when Redis cannot be reached: no write unrenewed)."""
        try:
            renewed = renew_all([w.lease for w in batch])
        except Exception as exc:
            for waiting in batch:
                waiting.outcome = exc
            return []
        held = []
        for waiting, ok in zip(batch, renewed, strict=True):
            if ok:
                held.append(waiting)
            else:
                waiting.outcome = waiting.lease.lost()
        return held

    def _write(self, requests: list[PublishRequest]) -> list[str | Exception]:
        self.transactions += 1
        self.published += len(requests)
        try:
            return self._write_many(requests)
        except Exception as exc:
            if len(requests) == 1:
                return [exc]
            logger.warning(
                "a transaction of %d publishes failed (%s); writing each alone",
                len(requests),
                exc,
            )
            return [self._write_alone(r) for r in requests]
        finally:
            close_old_connections()  # the connection goes back to the process's pool

    def _write_alone(self, request: PublishRequest) -> str | Exception:
        close_old_connections()  # a connection the failure broke is not reused
        try:
            (outcome,) = self._write_many([request])
        except Exception as exc:
            return exc
        return outcome


PUBLISHES = PublishQueue()  # the process's one queue
