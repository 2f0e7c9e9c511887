"""Choosing and loading the detector, once per inference worker process."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from django.conf import settings

from inference.backends.base import Backend, Box, DetectOptions
from inference.backends.mock import MockBackend

logger = logging.getLogger(__name__)

__all__ = [
    "RUNTIMES",
    "Backend",
    "Box",
    "DetectOptions",
    "build_yolo",
    "choose_runtime",
    "load_backend",
]

RUNTIMES = ("openvino", "onnx", "torch", "tensorrt")


def choose_runtime(wanted: str, device: str) -> str:
    """The runtime for ``MISIS_RUNTIME`` (``auto`` or one of RUNTIMES) on ``device``.

    ``auto`` on CUDA: TensorRT when it is installed, else torch in fp16. ``auto`` on a CPU
    stays ``auto``: the faster of OpenVINO and ONNX Runtime depends on the CPU, and is measured
    when the backend loads (inference/runtime_choice.py).
    """
    if wanted in RUNTIMES:
        return wanted
    if wanted != "auto":
        raise ValueError(f"MISIS_RUNTIME must be auto or one of {', '.join(RUNTIMES)}: {wanted!r}")
    if device == "cpu":
        return "auto"
    return "tensorrt" if importlib.util.find_spec("tensorrt") is not None else "torch"


def load_backend() -> tuple[Backend, str | None]:
    """The configured backend, and why it fell back to ``mock`` (None when it did not).

    ``mock`` serves only when asked for or when no model can load; the fallback is logged
    loudly and reported by /health/.
    """
    wanted = settings.MISIS_INFERENCE_BACKEND
    if wanted == "mock":
        return MockBackend(delay_ms=settings.MISIS_MOCK_DELAY_MS), None
    runtime = settings.MISIS_RUNTIME
    try:
        runtime = choose_runtime(settings.MISIS_RUNTIME, settings.MISIS_DEVICE)
        device = settings.MISIS_DEVICE
        cache = Path(settings.MISIS_MODEL_CACHE)

        def build(name: str) -> Backend:
            return build_yolo(
                name,
                model=settings.MISIS_MODEL or None,
                device=device,
                # torch on CUDA: fp16 when chosen by auto, its best there short of TensorRT.
                half=settings.MISIS_HALF or (device != "cpu" and settings.MISIS_RUNTIME == "auto"),
                threads=settings.MISIS_INFERENCE_THREADS or None,
                cache=cache,
            )

        if runtime != "auto":
            return build(runtime), None
        from inference.backends.yolo import cpu_threads, default_model_path
        from inference.runtime_choice import choose_cpu_runtime

        runtime, backend = choose_cpu_runtime(
            Path(settings.MISIS_MODEL or default_model_path()),
            cache,
            cpu_threads(settings.MISIS_INFERENCE_THREADS or None),
            settings.MISIS_MAX_BATCH,
            build,
        )
        return backend, None
    except Exception as exc:  # any failure to load a model must not kill the worker
        reason = (
            f"{wanted} backend could not load on runtime {runtime} ({type(exc).__name__}: {exc})"
        )
        logger.error("DETECTOR FALLBACK TO MOCK: %s", reason)
        return MockBackend(delay_ms=settings.MISIS_MOCK_DELAY_MS), reason


def build_yolo(
    runtime: str,
    *,
    model: str | None,
    device: str,
    half: bool,
    threads: int | None,
    cache: Path,
) -> Backend:
    """The ``yolo`` backend for ``model`` (None: the default weights) on ``runtime``.

    ``half`` applies to torch on a GPU; a TensorRT engine is always fp16, the CPU runtimes fp32.
    """
    from inference.backends.yolo import YoloBackend, cpu_threads, default_model_path

    weights = model or default_model_path()
    if runtime in ("openvino", "onnx"):
        from inference.backends.runtime import RuntimeBackend

        return RuntimeBackend(weights, runtime, cache, device, cpu_threads(threads))
    if runtime == "tensorrt":
        from inference.export import export

        engine = export(Path(weights), "engine", cache, device)
        return YoloBackend(str(engine.model), device=device, half=True, threads=threads)
    if runtime == "torch":
        return YoloBackend(weights, device=device, half=half, threads=threads)
    raise ValueError(f"unknown runtime {runtime!r}; runtimes: {', '.join(RUNTIMES)}")
