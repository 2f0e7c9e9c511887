"""The bare OpenVINO and ONNX Runtime sessions against the torch path, on the real weights.

Same frames, same labels, boxes within a small IoU tolerance; the export cache keyed by the
weights' content, guarded by a file lock; a model that cannot load says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
from pytest_django import Settings

from inference.backends import choose_runtime, load_backend
from inference.backends.base import Box, DetectOptions
from inference.backends.runtime import RuntimeBackend, onnx_labels
from inference.backends.yolo import YoloBackend, cpu_threads, default_model_path
from inference.export import export, load_export, weights_hash
from inference.preprocess import letterbox
from inference.runtime_choice import choice_path
from runner.samples import ultralytics_assets, write_people_video

ROOT = Path(__file__).resolve().parents[2]
# The project's model cache: the exports the worker uses, made once and reused by every run.
CACHE = ROOT / ".run" / "models"


def iou(a: Box, b: Box) -> float:
    x1, y1, x2, y2 = max(a.x1, b.x1), max(a.y1, b.y1), min(a.x2, b.x2), min(a.y2, b.y2)
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter
    return inter / union


def closest(boxes: list[Box], box: Box) -> Box:
    """The box of ``boxes`` that overlaps ``box`` most."""
    return max(boxes, key=lambda b: iou(b, box))


def photo(name: str) -> np.ndarray:
    img = cv2.imread(str(ultralytics_assets() / name))
    assert img is not None
    return img


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> list[np.ndarray]:
    """The photos at their own size, and the frames of the people video (640x480) as the
    runner sends them (letterboxed)."""
    video = write_people_video(tmp_path_factory.mktemp("v") / "people.mp4", frames=6)
    cap = cv2.VideoCapture(str(video))
    out = [photo("bus.jpg"), photo("zidane.jpg")]
    while (ok_img := cap.read())[0]:
        out.append(letterbox(ok_img[1], 640)[0])
    assert len(out) == 8
    return out


@pytest.fixture(scope="module")
def torch_backend() -> Iterator[YoloBackend]:
    yield YoloBackend(default_model_path(), threads=2)


@pytest.fixture(scope="module", params=["openvino", "onnx"])
def runtime_backend(request: pytest.FixtureRequest) -> Iterator[RuntimeBackend]:
    yield RuntimeBackend(default_model_path(), request.param, CACHE, threads=2)


def test_the_bare_runtime_finds_the_same_boxes_as_torch(
    torch_backend: YoloBackend, runtime_backend: RuntimeBackend, frames: list[np.ndarray]
) -> None:
    assert runtime_backend.labels == torch_backend.labels == {0: "Normal", 1: "Fall"}
    opts = DetectOptions(confidence=0.25)
    matched = 0
    for frame in frames:
        # One frame a call: ultralytics letterboxes a batch of mixed sizes to a square instead.
        [want] = torch_backend.predict([frame], [opts])
        [got] = runtime_backend.predict([frame], [opts])
        assert len(got) == len(want), (want, got)
        for w in want:
            best = closest(got, w)
            assert best.label == w.label and best.class_id == w.class_id
            assert iou(best, w) > 0.95, (w, best)
            assert abs(best.confidence - w.confidence) < 0.02, (w, best)
            matched += 1
    assert matched >= 16  # 4 people on bus.jpg, 2 on zidane.jpg, on every frame


def test_a_batch_answers_each_frame_as_alone(
    runtime_backend: RuntimeBackend, frames: list[np.ndarray]
) -> None:
    """Frames of different sizes and options share one predict call; each keeps its answer."""
    options = [DetectOptions(confidence=0.25 + 0.05 * (i % 3)) for i in range(len(frames))]
    options[3] = DetectOptions(confidence=0.25, classes=frozenset({"Fall"}))
    together = runtime_backend.predict(frames, options)
    for frame, opts, boxes in zip(frames, options, together, strict=True):
        [alone] = runtime_backend.predict([frame], [opts])
        assert [b.label for b in boxes] == [b.label for b in alone]
        for a, b in zip(alone, boxes, strict=True):
            assert iou(a, b) > 0.99 and abs(a.confidence - b.confidence) < 1e-3
        assert all(b.confidence >= opts.confidence for b in boxes)
    assert all(b.label == "Fall" for b in together[3])
    h, w = frames[1].shape[:2]
    assert all(0 <= b.x1 < b.x2 <= w and 0 <= b.y1 < b.y2 <= h for b in together[1])


def test_an_export_is_reused_for_the_same_weights() -> None:
    weights = Path(default_model_path())
    first = export(weights, "openvino", CACHE)
    stamp = first.model.stat().st_mtime_ns
    again = export(weights, "openvino", CACHE)
    assert again == first and again.model.stat().st_mtime_ns == stamp
    assert first.sha256 == weights_hash(weights)
    assert first.folder.name == f"best-{first.sha256[:16]}-openvino"


@pytest.fixture(scope="module")
def renamed_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default weights with other class names: different bytes, a different model."""
    ckpt = torch.load(default_model_path(), map_location="cpu", weights_only=False)
    ckpt["model"].names = {0: "standing", 1: "lying"}
    path = tmp_path_factory.mktemp("w") / "best.pt"
    torch.save(ckpt, path)
    return path


def test_new_weights_under_the_same_name_are_exported_again(
    renamed_weights: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    original = export(Path(default_model_path()), "onnx", cache)
    changed = export(renamed_weights, "onnx", cache)
    assert changed.folder != original.folder  # same stem "best", other content
    assert changed.labels == {0: "standing", 1: "lying"}
    assert onnx_labels(changed.model) == changed.labels
    backend = RuntimeBackend(str(renamed_weights), "onnx", cache, threads=2)
    [boxes] = backend.predict([photo("bus.jpg")], [DetectOptions(confidence=0.4)])
    assert len([b for b in boxes if b.label == "standing"]) >= 3


EXPORT_IN_A_PROCESS = """
import logging, sys
from pathlib import Path
logging.basicConfig(level=logging.INFO, format="%(message)s")
from inference.export import export
print(export(Path(sys.argv[1]), "onnx", Path(sys.argv[2])).folder)
"""


def test_two_workers_exporting_at_once_export_once(renamed_weights: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", EXPORT_IN_A_PROCESS, str(renamed_weights), str(cache)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    folders = {out.strip().splitlines()[-1] for out, _ in outputs}
    assert len(folders) == 1
    logs = "".join(err for _, err in outputs)
    assert logs.count("exporting ") == 1, logs  # the second waited on the lock, then reused it
    # Only the finished export and its lock file are left: no half-written temporary folder.
    folder = Path(folders.pop())
    assert sorted(p.name for p in cache.iterdir()) == [folder.name, folder.name + ".lock"]


def test_an_unreadable_export_is_not_loaded(tmp_path: Path) -> None:
    folder = tmp_path / "best-0123-openvino"
    folder.mkdir()
    (folder / "model.xml").write_text("<net/>")
    assert load_export(folder, "openvino") is None  # no misis.json: cut short
    (folder / "misis.json").write_text(json.dumps({"version": 0, "format": "openvino"}))
    assert load_export(folder, "openvino") is None  # an older export


def test_onnx_labels_are_read_as_a_literal_never_run(tmp_path: Path) -> None:
    graph = onnx.helper.make_graph([], "g", [], [])
    model = onnx.helper.make_model(graph)
    onnx.helper.set_model_props(model, {"names": "__import__('os').system('touch pwned')"})
    path = tmp_path / "evil.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ValueError):
        onnx_labels(path)
    assert not Path("pwned").exists()


def test_auto_is_measured_on_a_cpu_and_names_what_is_wrong() -> None:
    assert choose_runtime("auto", "cpu") == "auto"  # decided when the backend loads
    assert choose_runtime("onnx", "cpu") == "onnx"
    # No TensorRT on this machine: a CUDA node without it runs torch (in fp16).
    assert choose_runtime("auto", "cuda:0") == "torch"
    with pytest.raises(ValueError, match="MISIS_RUNTIME"):
        choose_runtime("tensorflow", "cpu")


def test_a_model_that_cannot_load_says_so_in_the_log_and_health(
    settings: Settings, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    settings.MISIS_INFERENCE_BACKEND = "yolo"
    settings.MISIS_MODEL = str(broken)
    settings.MISIS_MODEL_CACHE = str(tmp_path / "cache")
    for runtime in ("openvino", "onnx", "torch"):
        settings.MISIS_RUNTIME = runtime
        backend, reason = load_backend()
        assert (backend.name, backend.runtime) == ("mock", "mock")
        assert reason is not None and f"runtime {runtime}" in reason and "broken.pt" in reason
    assert caplog.text.count("DETECTOR FALLBACK TO MOCK") == 3
    settings.MISIS_RUNTIME = "openvino"
    settings.MISIS_MODEL = ""
    settings.MISIS_MODEL_CACHE = str(CACHE)
    backend, reason = load_backend()
    assert (backend.name, backend.runtime, reason) == ("yolo", "openvino", None)


LOAD_IN_A_PROCESS = """
import sys
import django
django.setup()
from inference.backends import load_backend
backend, reason = load_backend()
print(backend.runtime, reason, "ultralytics" in sys.modules, "torch" in sys.modules)
"""


def test_the_default_runtime_needs_neither_ultralytics_nor_torch(settings: Settings) -> None:
    """The AGPL library and torch stay out of the inference worker once the exports exist; auto
    runs the runtime it measured faster on this CPU, and remembers it."""
    weights = Path(default_model_path())
    for fmt in ("openvino", "onnx"):
        export(weights, fmt, CACHE)
    out = subprocess.run(
        [sys.executable, "-c", LOAD_IN_A_PROCESS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MISIS_RUNTIME": "auto", "MISIS_INFERENCE_BACKEND": "yolo"},
        check=True,
    )
    runtime, *rest = out.stdout.split()
    assert rest == ["None", "False", "False"], out
    choice = choice_path(weights, CACHE, cpu_threads(None), settings.MISIS_MAX_BATCH)
    assert json.loads(choice.read_text())["runtime"] == runtime
    assert runtime in ("openvino", "onnx")


@pytest.mark.parametrize("runtime", ["openvino", "onnx"])
def test_an_onnx_with_a_static_input_runs_on_both_runtimes(
    runtime: str, torch_backend: YoloBackend
) -> None:
    """The package's own ONNX export: a fixed 1x3x640x640 input, labels in its metadata."""
    onnx_file = Path(default_model_path()).with_name("best_fp16.onnx")
    backend = RuntimeBackend(str(onnx_file), runtime, CACHE, threads=2)
    assert backend.labels == {0: "Normal", 1: "Fall"}
    img = photo("bus.jpg")
    opts = [DetectOptions(confidence=0.4)] * 2
    got = backend.predict([img, img], opts)  # two calls of batch 1 inside
    [want] = torch_backend.predict([img], opts[:1])
    for boxes in got:
        assert len([b for b in boxes if b.label == "Normal"]) >= 3
        for w in want:
            # The square input frames the edge person a little differently (as torch does on a
            # square input): the same people, not the same pixels.
            assert max(iou(g, w) for g in boxes) > 0.5, (w, boxes)
