"""Exporting ``.pt`` weights to a faster runtime's format once, and finding the export again.

An export is a folder under the model cache named by the weights' content hash and the
format (``<stem>-<sha256[:16]>-<format>/``): new weights (even under the same path) get a new
export, the same weights are never exported twice. Two workers starting together on one node
would both export into the same folder, so the export runs under an exclusive file lock
(``fcntl.flock`` on ``<folder>.lock``); the second waits, then finds the finished export.
An export is written to a temporary folder and renamed into place, so a worker killed mid-export
leaves no half export that a later one would load.

Beside the model files each export holds ``misis.json``: the labels, the weights' hash and the
format, so that loading an export needs neither ultralytics nor the ``.pt``.

Exporting uses ultralytics (and torch); loading an export does not.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

# engine: TensorRT, fp16, built on (and only valid for) the GPU it runs on.
FORMATS = ("onnx", "openvino", "engine")
# The largest batch a TensorRT engine accepts (its dynamic batch range is 1..this).
ENGINE_MAX_BATCH = 64
META = "misis.json"
# Bump when the export arguments change, so that older exports are not reused.
EXPORT_VERSION = 1


@dataclass(frozen=True)
class Export:
    folder: Path
    model: Path  # the file a runtime loads: model.onnx or model.xml
    labels: dict[int, str]
    sha256: str


def weights_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock held by this process until the block ends (released if it dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _model_file(folder: Path, fmt: str) -> Path:
    return folder / {"openvino": "model.xml", "onnx": "model.onnx", "engine": "model.engine"}[fmt]


def load_export(folder: Path, fmt: str) -> Export | None:
    """The finished export in ``folder``, or None when there is none (or it is unreadable)."""
    try:
        meta = json.loads((folder / META).read_text())
    except (OSError, ValueError):
        return None
    model = _model_file(folder, fmt)
    if meta.get("version") != EXPORT_VERSION or meta.get("format") != fmt or not model.is_file():
        return None
    labels = {int(k): str(v) for k, v in meta["labels"].items()}
    return Export(folder=folder, model=model, labels=labels, sha256=meta["sha256"])


def export(weights: Path, fmt: str, cache: Path, device: str = "cpu") -> Export:
    """The ``fmt`` export of ``weights`` in ``cache``, made now if it is not there yet.

    ``device`` matters only to ``engine``, which is built on that GPU."""
    if fmt not in FORMATS:
        raise ValueError(f"cannot export to {fmt!r}; formats: {', '.join(FORMATS)}")
    sha = weights_hash(weights)
    # An engine is specific to a GPU model: the device's name is part of its key.
    suffix = fmt if fmt != "engine" else f"engine-{_gpu_name(device)}"
    folder = cache / f"{weights.stem}-{sha[:16]}-{suffix}"
    found = load_export(folder, fmt)
    if found is not None:
        return found
    with file_lock(folder.with_name(folder.name + ".lock")):
        found = load_export(folder, fmt)  # another worker may have finished it meanwhile
        if found is not None:
            return found
        started = time.perf_counter()
        logger.info("exporting %s to %s in %s (once for these weights)", weights, fmt, folder)
        with tempfile.TemporaryDirectory(dir=cache, prefix=f".{folder.name}-") as tmp:
            staged = Path(tmp) / "out"
            staged.mkdir()
            try:
                labels = _export_with_ultralytics(weights, fmt, staged, device)
            except Exception as exc:
                raise RuntimeError(f"export of {weights} to {fmt} failed: {exc}") from exc
            meta = {
                "version": EXPORT_VERSION,
                "format": fmt,
                "sha256": sha,
                "weights": str(weights),
                "labels": {str(k): v for k, v in labels.items()},
            }
            (staged / META).write_text(json.dumps(meta, indent=1))
            if folder.exists():  # an unreadable leftover (older version, cut short)
                shutil.rmtree(folder)
            os.replace(staged, folder)
        logger.info("exported %s to %s in %.1fs", weights, fmt, time.perf_counter() - started)
    done = load_export(folder, fmt)
    if done is None:
        raise RuntimeError(f"export of {weights} to {fmt} left no loadable model in {folder}")
    return done


def _gpu_name(device: str) -> str:
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError(f"a TensorRT engine needs a CUDA GPU; {device!r} has none")
    name = torch.cuda.get_device_name(torch.device(device))
    return "".join(c if c.isalnum() else "_" for c in name)


def _export_with_ultralytics(weights: Path, fmt: str, out: Path, device: str) -> dict[int, str]:
    """Export into ``out``: model.onnx, model.xml + model.bin, or model.engine. Returns the
    labels."""
    # ultralytics' offline environment is set where the torch runtime lives, before its import.
    importlib.import_module("inference.backends.yolo")
    from ultralytics.models import YOLO

    # ultralytics writes the export beside the weights: give it a copy in the staging folder.
    local = out / "weights.pt"
    shutil.copyfile(weights, local)
    yolo = YOLO(str(local), task="detect")
    labels = {int(k): str(v) for k, v in yolo.names.items()}
    # dynamic: any batch size and any input size that is a multiple of the stride.
    if fmt == "onnx":
        produced = Path(yolo.export(format="onnx", dynamic=True, simplify=True, verbose=False))
        os.replace(produced, out / "model.onnx")
    elif fmt == "engine":
        produced = Path(
            yolo.export(
                format="engine",
                dynamic=True,
                batch=ENGINE_MAX_BATCH,
                quantize=16,  # fp16 ('half' in ultralytics < 8.4)
                device=device,
                verbose=False,
            )
        )
        os.replace(produced, out / "model.engine")
        for leftover in out.glob("weights.onnx"):  # the intermediate ONNX
            leftover.unlink()
    else:
        produced = Path(yolo.export(format="openvino", dynamic=True, verbose=False))
        for suffix in (".xml", ".bin"):
            os.replace(next(produced.glob(f"*{suffix}")), out / f"model{suffix}")
        shutil.rmtree(produced)
    local.unlink()
    return labels
