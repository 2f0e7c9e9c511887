from __future__ import annotations

import numpy as np
import pytest

from inference.preprocess import letterbox, model_input, to_tensor


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


def test_the_model_input_scales_small_frames_up_like_ultralytics() -> None:
    """The bare runtimes see what ultralytics' predictor would: long side = imgsz, stride pad."""
    frame = np.zeros((240, 320, 3), dtype=np.uint8)
    frame[40:80, 100:200] = 255
    image, box = model_input(frame, 640)
    assert image.shape == (480, 640, 3) and box.scale == pytest.approx(2.0)
    ys, xs = np.nonzero(image[:, :, 0] == 255)
    found = {"x1": xs.min(), "y1": ys.min(), "x2": xs.max() + 1, "y2": ys.max() + 1}
    assert box.to_source(found) == pytest.approx({"x1": 100, "y1": 40, "x2": 200, "y2": 80}, abs=1)


def test_the_model_input_of_a_large_frame_is_the_runners_letterbox() -> None:
    frame = np.random.default_rng(1).integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    (image, box), (sent, sent_box) = model_input(frame, 640), letterbox(frame, 640)
    assert np.array_equal(image, sent) and box == sent_box


def test_the_tensor_is_rgb_nchw_in_0_1() -> None:
    bgr = np.zeros((32, 64, 3), dtype=np.uint8)
    bgr[..., 0] = 255  # blue
    tensor = to_tensor([bgr, bgr])
    assert tensor.shape == (2, 3, 32, 64) and tensor.dtype == np.float32
    assert tensor[:, 2].min() == 1.0 and tensor[:, :2].max() == 0.0  # blue is the last channel
