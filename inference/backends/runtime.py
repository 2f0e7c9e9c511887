"""YOLO weights on a bare OpenVINO or ONNX Runtime session: no ultralytics, no torch.

The project's own letterbox (``inference.preprocess``) and NMS (``inference.postprocess``)
replace ultralytics' predictor around the session; the boxes match ultralytics' on the same
weights (tests/inference/test_runtimes.py). A ``.pt`` is exported once to the runtime's format
(``inference.export``); an ``.onnx`` runs as it is on either runtime.
"""

from __future__ import annotations

import ast
import logging
import time
from pathlib import Path

import numpy as np

from inference.backends.base import Box, DetectOptions, warn_unknown_labels
from inference.export import export
from inference.postprocess import detections
from inference.preprocess import Letterbox, model_input, to_tensor
from inference.runtimes import Session, open_session
from scenarios.params import DEFAULT_CONFIDENCE, DEFAULT_IMGSZ

logger = logging.getLogger(__name__)


def onnx_labels(path: Path) -> dict[int, str]:
    """The class names ultralytics writes into an ONNX export's metadata (``names``)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    if "names" not in meta:
        raise ValueError(f"{path} has no 'names' metadata: not an ultralytics YOLO export")
    names = ast.literal_eval(meta["names"])  # a dict literal, never code
    return {int(k): str(v) for k, v in names.items()}


class RuntimeBackend:
    """Detector backend ``yolo`` on the ``openvino`` or ``onnx`` runtime."""

    name = "yolo"

    def __init__(
        self, model: str, runtime: str, cache: Path, device: str = "cpu", threads: int = 1
    ) -> None:
        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"YOLO weights not found: {model}")
        started = time.perf_counter()
        if path.suffix.lower() == ".onnx":  # both runtimes read ONNX as it is
            file, self.labels = path, onnx_labels(path)
        elif path.suffix.lower() == ".pt":
            exported = export(path, runtime, cache)
            file, self.labels = exported.model, exported.labels
        else:
            raise ValueError(f"the {runtime} runtime takes .pt or .onnx weights, got {model!r}")
        self.model = str(path)
        self.runtime = runtime
        self.device = device
        self.threads = threads
        self._session: Session = open_session(runtime, file, threads, device)
        self._warned_labels: set[str] = set()
        blank = np.zeros((DEFAULT_IMGSZ, DEFAULT_IMGSZ, 3), dtype=np.uint8)
        self.predict([blank], [DetectOptions(confidence=DEFAULT_CONFIDENCE)])
        logger.info(
            "YOLO backend ready in %.2fs: model=%s runtime=%s (%s) device=%s threads=%d labels=%s",
            time.perf_counter() - started,
            self.model,
            runtime,
            file,
            device,
            threads,
            self.labels,
        )

    def predict(self, frames: list[np.ndarray], options: list[DetectOptions]) -> list[list[Box]]:
        if len(frames) != len(options):
            raise ValueError(f"{len(frames)} frames but {len(options)} options")
        for classes in {opts.classes for opts in options if opts.classes is not None}:
            warn_unknown_labels(classes, self.labels, self._warned_labels, self.model)
        batch, height, width = self._session.input_shape
        fixed = (height, width) if height is not None and width is not None else None
        prepared = [model_input(f, o.imgsz, fixed) for f, o in zip(frames, options, strict=True)]
        # One session call per input shape (frames of one camera share it), in chunks of the
        # model's batch size when it has a static one.
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, (image, _) in enumerate(prepared):
            groups.setdefault(image.shape, []).append(index)
        results: list[list[Box]] = [[] for _ in frames]
        for group in groups.values():
            step = batch or len(group)
            for start in range(0, len(group), step):
                indices = group[start : start + step]
                output = self._session(to_tensor([prepared[i][0] for i in indices]))
                for row, index in enumerate(indices):
                    results[index] = self._boxes(output[row], options[index], prepared[index][1])
        return results

    def _boxes(self, output: np.ndarray, opts: DetectOptions, transform: Letterbox) -> list[Box]:
        boxes = []
        for class_id, conf, x1, y1, x2, y2 in detections(output, opts.confidence, transform):
            label = self.labels.get(class_id, str(class_id))
            if opts.classes is not None and label not in opts.classes:
                continue
            boxes.append(Box(label, class_id, conf, x1, y1, x2, y2))
        return boxes
