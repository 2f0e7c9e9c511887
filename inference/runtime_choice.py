"""``MISIS_RUNTIME=auto`` on a CPU: the faster of OpenVINO and ONNX Runtime for these weights
on this CPU, measured once and remembered.

Which one is faster depends on the CPU: on an AVX-512 bf16 CPU OpenVINO ran the default weights
at 14-17 frames/s against ONNX Runtime's 7-9, on an AVX2-only one ONNX Runtime ran them 11-22 %
faster (README, "Detection"). So the first worker that loads a set of weights on a kind of CPU
builds both, times them in turns (a few rounds at batch 1 and at the worker's largest batch,
the median of each), keeps the faster and writes the figures beside the exports. Every later
worker with the same weights, CPU, threads, largest batch and runtime versions reads that file
and measures nothing; any of those changing measures again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import statistics
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np

from inference.backends.base import Backend, DetectOptions
from inference.export import file_lock, weights_hash

logger = logging.getLogger(__name__)

CANDIDATES = ("openvino", "onnx")
ROUNDS = 3
SECONDS = 1.0  # a round, per runtime and batch
FRAME_SHAPE = (480, 640, 3)  # a VGA camera's frame


def cpu_fingerprint() -> str:
    """The CPU's model name and instruction-set flags (what decides which runtime wins)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        import platform

        return platform.processor() or platform.machine()
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        fields.setdefault(name.strip(), value.strip())
    return f"{fields.get('model name', '')}|{fields.get('flags', '')}"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "-"


def choice_path(weights: Path, cache: Path, threads: int, batch: int) -> Path:
    """Where the measured choice for these weights on this CPU is kept."""
    key = "|".join(
        [
            weights_hash(weights),
            cpu_fingerprint(),
            str(threads),
            str(batch),
            *(f"{p}={_version(p)}" for p in ("openvino", "onnxruntime")),
        ]
    )
    return cache / f"{weights.stem}-runtime-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def remembered(path: Path) -> str | None:
    """The runtime a choice file names, or None (no file, or not one this module wrote)."""
    try:
        runtime = json.loads(path.read_text())["runtime"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return runtime if runtime in CANDIDATES else None


def frames_per_second(backend: Backend, batch: int, seconds: float) -> float:
    """Frames a second of ``backend`` on a fixed VGA frame, ``batch`` frames a call."""
    frame = np.random.default_rng(0).integers(0, 256, FRAME_SHAPE, dtype=np.uint8)
    frames, options = [frame] * batch, [DetectOptions()] * batch
    done, t0 = 0, time.perf_counter()
    while done == 0 or time.perf_counter() - t0 < seconds:
        backend.predict(frames, options)
        done += batch
    return done / (time.perf_counter() - t0)


def measure(
    backends: dict[str, Backend], batch: int, rounds: int, seconds: float
) -> dict[str, float]:
    """Each backend's frames a second at its better batch (1 or ``batch``): the median of
    ``rounds`` rounds taken in turns, so that a drift of the machine's speed hits all alike."""
    batches = sorted({1, max(1, batch)})
    for backend in backends.values():  # compile and warm every shape first
        for b in batches:
            frames_per_second(backend, b, 0.0)
    samples: dict[tuple[str, int], list[float]] = {}
    for _ in range(rounds):
        for name, backend in backends.items():
            for b in batches:
                samples.setdefault((name, b), []).append(frames_per_second(backend, b, seconds))
    return {name: max(statistics.median(samples[(name, b)]) for b in batches) for name in backends}


def choose_cpu_runtime(
    weights: Path,
    cache: Path,
    threads: int,
    batch: int,
    build: Callable[[str], Backend],
    *,
    rounds: int = ROUNDS,
    seconds: float = SECONDS,
) -> tuple[str, Backend]:
    """The faster CPU runtime for ``weights`` here, and its backend (built with ``build``).

    A runtime that cannot load the weights is left out (with a warning); when none can, the
    last one's error is raised.
    """
    path = choice_path(weights, cache, threads, batch)
    # Workers starting together on a node measure one at a time (each would slow the other's
    # figures); one that waited reads what the first found.
    with file_lock(path.with_suffix(".lock")):
        known = remembered(path)
        if known is not None:
            logger.info("runtime auto: %s, as measured before on this CPU (%s)", known, path)
            return known, build(known)
        return _measure_and_remember(weights, path, batch, build, rounds, seconds)


def _measure_and_remember(
    weights: Path,
    path: Path,
    batch: int,
    build: Callable[[str], Backend],
    rounds: int,
    seconds: float,
) -> tuple[str, Backend]:
    backends: dict[str, Backend] = {}
    error: Exception | None = None
    for name in CANDIDATES:
        try:
            backends[name] = build(name)
        except Exception as exc:
            logger.warning("runtime auto: %s cannot run %s: %s", name, weights, exc)
            error = exc
    if not backends:
        assert error is not None
        raise error
    logger.info(
        "runtime auto: timing %s on this CPU (%d rounds of %g s, batch %s)",
        " and ".join(backends),
        rounds,
        seconds,
        " and ".join(str(b) for b in sorted({1, max(1, batch)})),
    )
    speeds = measure(backends, batch, rounds, seconds) if len(backends) > 1 else {}
    best = max(speeds, key=speeds.__getitem__) if speeds else next(iter(backends))
    figures = ", ".join(f"{n} {s:.2f}" for n, s in speeds.items())
    logger.info("runtime auto: %s (frames/s, median of %d: %s)", best, rounds, figures)
    if speeds:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(
            json.dumps({"runtime": best, "frames_per_second": speeds, "batch": batch}) + "\n"
        )
        os.replace(tmp, path)  # whole or absent, for a worker starting beside this one
    return best, backends[best]
