"""``MISIS_RUNTIME=auto`` on a CPU: the faster runtime, measured once per weights and CPU.

The runtimes here are the project's mock backend slowed by a known delay a call, so which one
is faster is known; the real runtimes are chosen the same way in test_runtimes.py.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from pathlib import Path

import pytest

from inference.backends.base import Backend
from inference.backends.mock import MockBackend
from inference.runtime_choice import choice_path, choose_cpu_runtime


class Builds:
    """Builds a mock backend per runtime name with that runtime's delay; counts the builds."""

    def __init__(self, delays: Mapping[str, float | Exception]) -> None:
        self.delays = delays
        self.built: list[str] = []

    def __call__(self, name: str) -> Backend:
        self.built.append(name)
        delay = self.delays[name]
        if isinstance(delay, Exception):
            raise delay
        return MockBackend(model=name, delay_ms=delay)


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    path = tmp_path / "best.pt"
    path.write_bytes(b"weights v1")
    return path


def choose(weights: Path, cache: Path, build: Builds, batch: int = 4) -> tuple[str, Backend]:
    return choose_cpu_runtime(weights, cache, 2, batch, build, rounds=2, seconds=0.05)


def test_the_faster_runtime_is_chosen_and_remembered(weights: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    build = Builds({"openvino": 8.0, "onnx": 1.0})

    runtime, backend = choose(weights, cache, build)

    assert runtime == "onnx" and backend.model == "onnx"
    saved = json.loads(choice_path(weights, cache, 2, 4).read_text())
    assert saved["runtime"] == "onnx"
    assert saved["frames_per_second"]["onnx"] > saved["frames_per_second"]["openvino"]

    # The next worker reads the file: it builds the chosen runtime only, and measures nothing
    # (with the delays swapped, a measurement would now choose openvino).
    again = Builds({"openvino": 1.0, "onnx": 8.0})
    assert choose(weights, cache, again)[0] == "onnx"
    assert again.built == ["onnx"]


def test_new_weights_or_another_largest_batch_measure_again(weights: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert choose(weights, cache, Builds({"openvino": 8.0, "onnx": 1.0}))[0] == "onnx"

    swapped = {"openvino": 1.0, "onnx": 8.0}
    assert choose(weights, cache, Builds(swapped), batch=1)[0] == "openvino"
    weights.write_bytes(b"weights v2")  # same path, new weights
    assert choose(weights, cache, Builds(swapped))[0] == "openvino"


def test_a_runtime_that_cannot_load_is_left_out_and_none_raises(
    weights: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="inference.runtime_choice")
    broken = Builds({"openvino": RuntimeError("no OpenVINO plugin for this CPU"), "onnx": 5.0})
    assert choose(weights, tmp_path / "a", broken)[0] == "onnx"
    assert "openvino cannot run" in caplog.text and "no OpenVINO plugin" in caplog.text
    # One runtime loading is no measurement: nothing is remembered, the next start tries again.
    assert not choice_path(weights, tmp_path / "a", 2, 4).exists()

    neither = Builds({"openvino": RuntimeError("bad xml"), "onnx": ValueError("bad onnx")})
    with pytest.raises(ValueError, match="bad onnx"):
        choose(weights, tmp_path / "b", neither)


@pytest.mark.parametrize("content", ["", "{", '{"runtime": "tensorflow"}', '["onnx"]'])
def test_a_damaged_choice_file_is_measured_again(
    weights: Path, tmp_path: Path, content: str
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    choice_path(weights, cache, 2, 4).write_text(content)

    build = Builds({"openvino": 1.0, "onnx": 8.0})
    assert choose(weights, cache, build)[0] == "openvino"
    assert sorted(build.built) == ["onnx", "openvino"]
    assert json.loads(choice_path(weights, cache, 2, 4).read_text())["runtime"] == "openvino"


def test_workers_starting_together_measure_once(weights: Path, tmp_path: Path) -> None:
    """The second waits for the first's figures (two measuring at once slow each other)."""
    cache = tmp_path / "cache"
    builds = [Builds({"openvino": 8.0, "onnx": 1.0}) for _ in range(2)]
    chosen: list[str] = []
    threads = [
        threading.Thread(target=lambda b=b: chosen.append(choose(weights, cache, b)[0]))
        for b in builds
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert chosen == ["onnx", "onnx"]
    assert sorted(len(b.built) for b in builds) == [1, 2]  # one measured both, one built onnx
