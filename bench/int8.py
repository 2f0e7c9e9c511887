"""OpenVINO int8 (NNCF post-training quantization) beside the OpenVINO model the worker runs,
same weights, threads and frames, in one run: frames a second and how far the boxes move.

    .venv/bin/pip install nncf==3.4.0      # the bench's own need, not the project's
    .venv/bin/python -m bench.int8 [--frames 200] [--seconds 5] [--rounds 3] [--threads 2]

The default weights' OpenVINO export (inference/export.py's cache) is quantized by NNCF,
calibrated on the frames the project ships (runner/samples.py: ultralytics' bus.jpg and
zidane.jpg, panned), the even ones; the odd ones are the test frames. Both models run inside
the worker's own backend (the project's letterbox and NMS; only the session differs), at
batch 1 and 4, alternately for ``--rounds``. Agreement: each box the worker's model finds on a
test frame is matched to the int8 model's box of the same label with the highest IoU; printed:
the share found (IoU >= 0.5), their mean IoU and the largest confidence difference, and the
int8 boxes with no match. On a CPU with AMX the worker's model already runs in bf16
(OpenVINO's default there), so this is int8 against bf16.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_IMGSZ = 640


def iou(a: Any, b: Any) -> float:
    ix = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    iy = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    inter = ix * iy
    union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter
    return inter / union if union > 0 else 0.0


def agreement(reference: list[list[Any]], other: list[list[Any]]) -> str:
    found, ious, conf_gap, extra, total = 0, [], 0.0, 0, 0
    for ref_boxes, boxes in zip(reference, other, strict=True):
        used: set[int] = set()
        for ref in ref_boxes:
            total += 1
            best, best_iou = None, 0.0
            for i, box in enumerate(boxes):
                if i not in used and box.label == ref.label and iou(ref, box) > best_iou:
                    best, best_iou = i, iou(ref, box)
            if best is not None and best_iou >= 0.5:
                used.add(best)
                found += 1
                ious.append(best_iou)
                conf_gap = max(conf_gap, abs(boxes[best].confidence - ref.confidence))
        extra += len(boxes) - len(used)
    return (
        f"{found}/{total} boxes found ({found / max(total, 1):.1%}), mean IoU "
        f"{statistics.mean(ious) if ious else 0:.3f}, confidence within {conf_gap:.3f}, "
        f"{extra} boxes of int8's own"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "misis.settings.test")
    import django

    django.setup()
    import cv2
    import nncf
    import openvino as ov
    from django.conf import settings

    from bench.detection import direct
    from inference.backends import build_yolo
    from inference.backends.base import DetectOptions
    from inference.export import export
    from inference.preprocess import model_input, to_tensor
    from inference.runtimes import OpenVinoSession
    from runner.samples import write_people_video

    video = write_people_video(
        Path(tempfile.mkdtemp(prefix="misis-int8-")) / "people.mp4", frames=args.frames
    )
    cap = cv2.VideoCapture(str(video))
    frames = []
    while (ok := cap.read())[0]:
        frames.append(ok[1])
    calibration, test = frames[0::2], frames[1::2]

    backend: Any = build_yolo(
        "openvino",
        model=None,
        device="cpu",
        half=False,
        threads=args.threads,
        cache=Path(settings.MISIS_MODEL_CACHE),
    )
    source = export(Path(backend.model), "openvino", Path(settings.MISIS_MODEL_CACHE)).model
    quantized = source.with_name("model-int8.xml")
    started = time.perf_counter()
    if not quantized.is_file():
        core = ov.Core()
        dataset = nncf.Dataset(
            calibration, lambda image: to_tensor([model_input(image, DEFAULT_IMGSZ)[0]])
        )
        model = nncf.quantize(
            core.read_model(source),
            dataset,
            preset=nncf.QuantizationPreset.MIXED,
            subset_size=len(calibration),
        )
        ov.save_model(model, quantized)
    print(
        f"# int8: {quantized} ({'made' if time.perf_counter() - started > 1 else 'cached'} in "
        f"{time.perf_counter() - started:.0f} s from {len(calibration)} frames); "
        f"{len(test)} test frames 640x480, {args.threads} threads; OpenVINO precision "
        f"{ov.Core().get_property('CPU', 'INFERENCE_PRECISION_HINT')}; load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    sessions = {
        "openvino": backend._session,
        "openvino int8": OpenVinoSession(quantized, args.threads),
    }
    opts = [DetectOptions()] * len(test)
    boxes: dict[str, list[list[Any]]] = {}
    speed: dict[str, list[dict[int, float]]] = {name: [] for name in sessions}
    for _ in range(args.rounds):
        for name, session in sessions.items():
            backend._session = session
            speed[name].append(direct(backend, test, [1, 4], args.seconds))
            boxes[name] = [backend.predict([f], opts[:1])[0] for f in test]
    for name in sessions:
        for batch in (1, 4):
            runs = [r[batch] for r in speed[name]]
            print(
                f"{name:>14}, batch {batch}: {min(runs):6.2f} - {max(runs):6.2f} frames/s "
                f"({' / '.join(f'{r:.2f}' for r in runs)})"
            )
    for batch in (1, 4):
        ratios = [
            i[batch] / o[batch]
            for i, o in zip(speed["openvino int8"], speed["openvino"], strict=True)
        ]
        print(f"int8 / openvino, batch {batch}: {min(ratios):.2f} - {max(ratios):.2f}")
    print("agreement: " + agreement(boxes["openvino"], boxes["openvino int8"]))


if __name__ == "__main__":
    main()
