"""The inference worker process: load the detector once, then run the batcher in a thread."""

from __future__ import annotations

import logging
import threading
from typing import Any

from inference.backends import load_backend
from inference.batcher import Batcher

logger = logging.getLogger(__name__)

_batcher: Batcher | None = None
_thread: threading.Thread | None = None


def start_batcher() -> dict[str, Any]:
    """Start the batching loop once per process; returns what /health/ shows of it."""
    global _batcher, _thread
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


def stop_batcher(timeout: float = 30.0) -> None:
    """Let the batch in hand finish before the process exits (torch aborts if cut mid-call)."""
    if _batcher is not None and _thread is not None:
        _batcher.stop_event.set()
        _thread.join(timeout)
