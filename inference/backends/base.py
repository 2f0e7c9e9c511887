"""The small interface every detector backend implements.

A backend is loaded once per inference worker process and then called with batches of frames
gathered from all scenarios (see ``inference.batcher``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np

from scenarios.params import DEFAULT_CLASSES, DEFAULT_CONFIDENCE, DEFAULT_IMGSZ

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Box:
    label: str
    class_id: int
    confidence: float
    x1: float
    y1: float
    x2: float
    y2: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class DetectOptions:
    """Per-scenario options; every frame of a batch may carry different ones."""

    confidence: float = DEFAULT_CONFIDENCE
    classes: frozenset[str] | None = DEFAULT_CLASSES  # labels to keep; None keeps all
    imgsz: int = DEFAULT_IMGSZ


class Backend(Protocol):
    name: str  # "yolo", "mock", ...
    model: str  # path or name of the weights
    runtime: str  # what runs them: "openvino", "onnx", "torch", "tensorrt"; "mock" for mock
    labels: dict[int, str]

    def predict(self, frames: list[np.ndarray], options: list[DetectOptions]) -> list[list[Box]]:
        """Detect objects in BGR uint8 frames (H x W x 3, source resolution).

        Returns one list of boxes per frame, in source-frame pixel coordinates, in input order.
        """
        ...


def warn_unknown_labels(
    classes: frozenset[str], labels: dict[int, str], warned: set[str], model: object
) -> None:
    """Log once per label a requested class the model does not have (it never matches);
    ``warned`` is the backend's own set of labels already logged, updated here."""
    unknown = classes - set(labels.values()) - warned
    if unknown:
        warned |= unknown
        logger.warning(
            "labels %s are not in model %s (labels: %s): they never match",
            sorted(unknown),
            model,
            sorted(labels.values()),
        )
