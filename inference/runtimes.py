"""Bare runtime sessions for exported YOLO models: OpenVINO and ONNX Runtime, called directly.

A session takes one NCHW float32 batch (RGB, 0..1) and returns the model's raw output,
``(batch, 4 + classes, anchors)``. Neither imports ultralytics nor torch.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

import numpy as np

logger = logging.getLogger(__name__)


class Session(Protocol):
    runtime: str
    device: str
    # The model's input (batch, height, width); None where it is dynamic.
    input_shape: tuple[int | None, int | None, int | None]

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


class OpenVinoSession:
    """OpenVINO on the CPU, latency hint, a fixed number of threads."""

    runtime = "openvino"

    def __init__(self, model: Path, threads: int, device: str = "CPU") -> None:
        import openvino as ov

        self.device = device
        core = ov.Core()
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if device == "CPU":
            config["INFERENCE_NUM_THREADS"] = threads
        # The model is exported with dynamic batch and size; a shape seen for the first time
        # costs one extra compile inside OpenVINO, then it is cached by the plugin.
        self._compiled: Any = core.compile_model(core.read_model(model), device, config)
        self._request: Any = self._compiled.create_infer_request()
        # An fp16 ONNX takes fp16 input; everything else fp32.
        self._dtype = np.dtype(self._compiled.input(0).get_element_type().to_dtype())
        dims = self._compiled.input(0).get_partial_shape()
        b, _, h, w = (d.get_length() if d.is_static else None for d in dims)
        self.input_shape = (b, h, w)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self._request.infer({0: batch.astype(self._dtype, copy=False)})
        out: np.ndarray = self._request.get_output_tensor(0).data
        # A copy: the request reuses its buffer on the next call.
        return out.astype(np.float32, copy=True)


class OnnxSession:
    """ONNX Runtime with the best execution provider installed (TensorRT, CUDA, then CPU)."""

    runtime = "onnx"
    PREFERRED = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")

    def __init__(self, model: Path, threads: int, device: str = "cpu") -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        available = set(ort.get_available_providers())
        wanted = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            wanted = [p for p in self.PREFERRED if p in available]
        self.device = device
        self._session: Any = ort.InferenceSession(str(model), options, providers=wanted)
        first = self._session.get_inputs()[0]
        self._input = first.name
        self._dtype = np.float16 if first.type == "tensor(float16)" else np.float32
        b, _, h, w = (d if isinstance(d, int) else None for d in first.shape)
        self.input_shape = (b, h, w)
        logger.info("onnxruntime providers: %s", self._session.get_providers())

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        feed = {self._input: batch.astype(self._dtype, copy=False)}
        out: np.ndarray = self._session.run(None, feed)[0]
        return out.astype(np.float32, copy=False)


def open_session(runtime: str, model: Path, threads: int, device: str) -> Session:
    if runtime == "openvino":
        if device != "cpu":
            raise ValueError(f"the openvino runtime runs on the CPU here, not on {device!r}")
        return OpenVinoSession(model, threads)
    if runtime == "onnx":
        return OnnxSession(model, threads, device)
    raise ValueError(f"no bare session for runtime {runtime!r}")
