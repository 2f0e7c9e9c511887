"""The inference workers: backend, model, device, batching, frames in flight. Imported by
base.py."""

from pathlib import Path

from misis.settings.env import env

MISIS_INFERENCE_BACKEND: str = env("MISIS_INFERENCE_BACKEND", default="yolo")
MISIS_MODEL: str = env("MISIS_MODEL", default="")
MISIS_DEVICE: str = env("MISIS_DEVICE", default="cpu")
MISIS_HALF: bool = env.bool("MISIS_HALF", default=False)
# What runs the YOLO weights: openvino | onnx | torch | tensorrt, or auto: on a CPU the faster of
# openvino and onnx there, measured once (inference/runtime_choice.py); on CUDA tensorrt when
# installed, else torch in fp16.
MISIS_RUNTIME: str = env("MISIS_RUNTIME", default="auto")
# Where .pt weights exported to another runtime are kept (one folder per weights hash).
MISIS_MODEL_CACHE: str = env(
    "MISIS_MODEL_CACHE", default=str(Path(__file__).resolve().parents[2] / ".run" / "models")
)
# torch threads of the inference worker; 0 means one per core.
MISIS_INFERENCE_THREADS: int = env.int("MISIS_INFERENCE_THREADS", default=0)
# Frames in one detector call. On a CPU the bare runtimes are faster per frame at batch 1 than
# at 4 (bench/detection.py), so 1 there; a GPU gains from batches.
MISIS_MAX_BATCH: int = env.int("MISIS_MAX_BATCH", default=1 if MISIS_DEVICE == "cpu" else 8)
MISIS_MAX_WAIT_MS: float = env.float("MISIS_MAX_WAIT_MS", default=5.0)
# Frames a file scenario keeps at the inference workers (live sources always keep one): one
# more than a batch, so that when a worker takes a full batch the next frame already waits
# (with no more than a batch it idles while the runner sends the next: bench/detection.py).
MISIS_MAX_IN_FLIGHT: int = env.int("MISIS_MAX_IN_FLIGHT", default=max(2, MISIS_MAX_BATCH + 1))
# A frame whose inference worker died is sent again after this long.
MISIS_INFERENCE_TIMEOUT: float = env.float("MISIS_INFERENCE_TIMEOUT", default=10.0)
MISIS_MOCK_DELAY_MS: float = env.float("MISIS_MOCK_DELAY_MS", default=0.0)
