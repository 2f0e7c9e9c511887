"""The inference worker process: load the detector once, then run the batcher in a thread."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

from django.conf import settings

from inference.backends import load_backend
from inference.batcher import Batcher

logger = logging.getLogger(__name__)

_batcher: Batcher | None = None
_thread: threading.Thread | None = None


def start_batcher() -> dict[str, Any]:
    """Start the batching loop once per process; returns what /health/ shows of it."""
    global _batcher, _thread
    nice = lower_priority(settings.MISIS_INFERENCE_NICE)
    logger.info("inference worker at nice %d (MISIS_INFERENCE_NICE)", nice)
    backend, fallback = load_backend()
    _batcher = Batcher(backend)
    _thread = threading.Thread(target=_batcher.run, name="batcher", daemon=True)
    _thread.start()
    return {
        "backend": backend.name,
        "model": backend.model,
        "runtime": backend.runtime,
        "fallback_reason": fallback,
    }


def lower_priority(nice: int) -> int:
    """Every thread of this process at ``nice`` at least, before the runtime starts its own
    threads (which inherit it); returns the calling thread's nice value after.

    On Linux a nice value belongs to a thread, not to the process: each one is set. A thread
    already lower is left so (raising a priority needs privileges)."""
    if nice > 0:
        for tid in _threads():
            try:
                if os.getpriority(os.PRIO_PROCESS, tid) < nice:
                    os.setpriority(os.PRIO_PROCESS, tid, nice)
            except ProcessLookupError:
                continue  # a thread that ended meanwhile
    return os.getpriority(os.PRIO_PROCESS, 0)


def _threads() -> list[int]:
    """This process's thread ids (Linux); elsewhere 0, the process itself."""
    tasks = Path("/proc/self/task")
    return [int(t.name) for t in tasks.iterdir()] if tasks.is_dir() else [0]


def stop_batcher(timeout: float = 30.0) -> None:
    """Let the batch in hand finish before the process exits (torch aborts if cut mid-call)."""
    if _batcher is not None and _thread is not None:
        _batcher.stop_event.set()
        _thread.join(timeout)
