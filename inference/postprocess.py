"""From a YOLO model's raw output to boxes: confidence filter, NMS, back to frame pixels.

The output of a YOLOv8/11 detection export is ``(batch, 4 + classes, anchors)``: a box centre
and size in model-input pixels, then one (already sigmoid) score per class. Each anchor keeps
its best class, as ultralytics' predictor does (``multi_label=False``).

NMS is OpenCV's ``cv2.dnn.NMSBoxesBatched`` (per class, like ultralytics' default): OpenCV is
already on every node for decoding and letterboxing, so the bare runtimes need neither torch
nor torchvision (``torchvision.ops.nms`` would load torch, ~1 s and ~300 MB, for a function that
takes well under a millisecond on the few hundred candidates left after the confidence filter).
"""

from __future__ import annotations

import cv2
import numpy as np

from inference.preprocess import Letterbox

# ultralytics' predict defaults.
IOU_THRESHOLD = 0.7
MAX_DETECTIONS = 300


def detections(
    output: np.ndarray, confidence: float, transform: Letterbox
) -> list[tuple[int, float, float, float, float, float]]:
    """One image's output (``4 + classes`` x anchors) as ``(class_id, conf, x1, y1, x2, y2)``
    in the pixels of the frame that ``transform`` letterboxed, best first."""
    scores = output[4:]
    class_ids = scores.argmax(axis=0)
    confs = scores[class_ids, np.arange(scores.shape[1])]
    keep = confs > confidence
    if not keep.any():
        return []
    cx, cy, w, h = output[:4, keep]
    confs, class_ids = confs[keep], class_ids[keep]
    rects = np.stack([cx - w / 2, cy - h / 2, w, h], axis=1).astype(np.float64)
    # Lists, as OpenCV's bindings are typed; only the few candidates above the threshold.
    chosen = cv2.dnn.NMSBoxesBatched(
        rects.tolist(), confs.tolist(), class_ids.tolist(), confidence, IOU_THRESHOLD
    )
    out = []
    for i in np.asarray(chosen, dtype=np.int64).reshape(-1)[:MAX_DETECTIONS]:
        x, y, bw, bh = rects[i]
        x1 = min(max((x - transform.pad_x) / transform.scale, 0.0), float(transform.width))
        y1 = min(max((y - transform.pad_y) / transform.scale, 0.0), float(transform.height))
        x2 = min(max((x + bw - transform.pad_x) / transform.scale, 0.0), float(transform.width))
        y2 = min(max((y + bh - transform.pad_y) / transform.scale, 0.0), float(transform.height))
        out.append((int(class_ids[i]), float(confs[i]), float(x1), float(y1), float(x2), float(y2)))
    return out
