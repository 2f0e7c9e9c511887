"""Runner-side preprocessing: shrink a frame to the model's input size before it travels.

A 1280x720 frame is 2.7 MB raw; letterboxed for ``imgsz=640`` it is 640x384, 0.7 MB, and the
model would have resized it to exactly that anyway (long side to ``imgsz``, short side padded
to a multiple of the stride). Boxes come back in the letterboxed frame's pixels and are mapped
to the source frame here. Colour order stays BGR: every backend takes OpenCV's BGR frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

STRIDE = 32
PAD_VALUE = 114  # ultralytics' letterbox grey


@dataclass(frozen=True)
class Letterbox:
    scale: float  # model pixels per source pixel
    pad_x: int
    pad_y: int
    width: int  # source size, to clip boxes
    height: int

    def to_source(self, box: dict[str, Any]) -> dict[str, Any]:
        """A box in letterboxed pixels, mapped back to source-frame pixels."""
        out = dict(box)
        for key, pad, limit in (
            ("x1", self.pad_x, self.width),
            ("x2", self.pad_x, self.width),
            ("y1", self.pad_y, self.height),
            ("y2", self.pad_y, self.height),
        ):
            out[key] = round(min(max((box[key] - pad) / self.scale, 0.0), float(limit)), 2)
        return out


def letterbox(image: np.ndarray, imgsz: int) -> tuple[np.ndarray, Letterbox | None]:
    """``image`` resized so its long side is ``imgsz`` and padded to the stride.

    Frames already no larger than that travel untouched (no copy); then the transform is None.
    """
    h, w = image.shape[:2]
    if imgsz / max(h, w) >= 1.0:
        return image, None
    return model_input(image, imgsz)


def model_input(
    image: np.ndarray, imgsz: int, fixed: tuple[int, int] | None = None
) -> tuple[np.ndarray, Letterbox]:
    """``image`` (BGR) as the model sees it: long side scaled to ``imgsz`` (up or down, as
    ultralytics' predictor does), padded to the stride, and how to map boxes back.

    ``fixed`` (height, width): a model with a static input size; the image is fitted into it
    and padded to exactly that size."""
    h, w = image.shape[:2]
    scale = imgsz / max(h, w) if fixed is None else min(fixed[0] / h, fixed[1] / w)
    new_w, new_h = max(round(w * scale), 1), max(round(h * scale), 1)
    out = image
    if (new_w, new_h) != (w, h):
        out = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    out_w = -(-new_w // STRIDE) * STRIDE if fixed is None else fixed[1]
    out_h = -(-new_h // STRIDE) * STRIDE if fixed is None else fixed[0]
    pad_x, pad_y = (out_w - new_w) // 2, (out_h - new_h) // 2
    if (out_w, out_h) != (new_w, new_h):
        out = cv2.copyMakeBorder(
            out,
            pad_y,
            out_h - new_h - pad_y,
            pad_x,
            out_w - new_w - pad_x,
            cv2.BORDER_CONSTANT,
            value=(PAD_VALUE, PAD_VALUE, PAD_VALUE),
        )
    return out, Letterbox(scale=scale, pad_x=pad_x, pad_y=pad_y, width=w, height=h)


def to_tensor(images: list[np.ndarray]) -> np.ndarray:
    """Same-sized BGR uint8 images as one NCHW float32 RGB batch in 0..1."""
    batch = np.stack(images)[..., ::-1].transpose(0, 3, 1, 2)
    return np.ascontiguousarray(batch, dtype=np.float32) * np.float32(1 / 255)
