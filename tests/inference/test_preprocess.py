from __future__ import annotations

import numpy as np
import pytest

from inference.preprocess import letterbox


def test_large_frame_is_shrunk_to_the_model_size_and_boxes_map_back() -> None:
    frame = np.zeros((720, 1280, 3), dtype=np.uint8)
    frame[100:300, 200:400] = 255
    small, box = letterbox(frame, 640)
    assert small.shape == (384, 640, 3)  # 360 padded to a multiple of 32
    assert box is not None and box.scale == pytest.approx(0.5)
    ys, xs = np.nonzero(small[:, :, 0] == 255)
    found = {"x1": xs.min(), "y1": ys.min(), "x2": xs.max() + 1, "y2": ys.max() + 1}
    back = box.to_source(found)
    assert back == pytest.approx({"x1": 200, "y1": 100, "x2": 400, "y2": 300}, abs=2)


def test_small_frame_travels_untouched() -> None:
    frame = np.zeros((240, 320, 3), dtype=np.uint8)
    out, box = letterbox(frame, 640)
    assert out is frame and box is None


def test_boxes_are_clipped_to_the_source_frame() -> None:
    _, box = letterbox(np.zeros((1000, 2000, 3), dtype=np.uint8), 640)
    assert box is not None
    back = box.to_source({"x1": -50.0, "y1": 0.0, "x2": 700.0, "y2": 640.0})
    assert back["x1"] == 0.0 and back["x2"] == 2000.0 and back["y2"] == 1000.0
