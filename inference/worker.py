"""The inference worker process: load the detector once, then run the batcher in a thread."""

from __future__ import annotations

import logging
import threading
from typing import Any

from inference.backends import load_backend
from inference.batcher import Batcher

logger = logging.getLogger(__name__)

_batcher: Batcher | None = None


def start_batcher() -> dict[str, Any]:
    """Start the batching loop once per process; returns what /health/ shows of it."""
    global _batcher
    backend, fallback = load_backend()
    _batcher = Batcher(backend)
    threading.Thread(target=_batcher.run, name="batcher", daemon=True).start()
    return {"backend": backend.name, "model": backend.model, "fallback_reason": fallback}
