"""Choosing and loading the detector, once per inference worker process."""

from __future__ import annotations

import logging

from django.conf import settings

from inference.backends.base import Backend, Box, DetectOptions
from inference.backends.mock import MockBackend

logger = logging.getLogger(__name__)

__all__ = ["Backend", "Box", "DetectOptions", "load_backend"]


def load_backend() -> tuple[Backend, str | None]:
    """The configured backend, and why it fell back to ``mock`` (None when it did not).

    ``mock`` serves only when asked for or when no model can load; the fallback is logged
    loudly and reported by /health/.
    """
    wanted = settings.MISIS_INFERENCE_BACKEND
    if wanted == "mock":
        return MockBackend(delay_ms=settings.MISIS_MOCK_DELAY_MS), None
    try:
        from inference.backends.yolo import YoloBackend, default_model_path

        model = settings.MISIS_MODEL or default_model_path()
        backend = YoloBackend(
            model,
            device=settings.MISIS_DEVICE,
            half=settings.MISIS_HALF,
            threads=settings.MISIS_INFERENCE_THREADS or None,
        )
        return backend, None
    except Exception as exc:  # any failure to load a model must not kill the worker
        reason = f"{wanted} backend could not load ({type(exc).__name__}: {exc})"
        logger.error("DETECTOR FALLBACK TO MOCK: %s", reason)
        return MockBackend(delay_ms=settings.MISIS_MOCK_DELAY_MS), reason
