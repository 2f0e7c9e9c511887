"""The dynamic batcher on the real Redis: frames of several runners share a batch, and each
answer returns to its own request, in order."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from inference import batcher as batcher_module
from inference.backends.base import Box, DetectOptions
from inference.backends.mock import MockBackend
from inference.batcher import Batcher
from inference.client import InferenceClient


def frame(value: int) -> np.ndarray:
    return np.full((48, 64, 3), value, dtype=np.uint8)


def expected_confidence(value: int) -> float:
    return round(0.5 + value / 510.0, 4)


def test_frames_of_several_scenarios_share_a_batch_and_come_back_to_their_owner() -> None:
    clients = [InferenceClient(max_in_flight=3) for _ in range(4)]
    for c, client in enumerate(clients):
        for i in range(3):
            client.submit(frame(10 * c + i), DetectOptions(confidence=0.0), tag=(c, i))
    batcher = Batcher(MockBackend(), max_batch=16, max_wait_ms=50)
    assert batcher.step() == 12  # one batch holds all four scenarios' frames
    for c, client in enumerate(clients):
        for i in range(3):
            got = client.collect(wait=1.0)
            assert got is not None
            tag, det = got
            assert tag == (c, i)  # in order, to the right client
            person = det.boxes[0]
            assert person["label"] == "person"
            assert person["confidence"] == expected_confidence(10 * c + i)
            assert (person["x1"], person["x2"]) == (16.0, 48.0)


def test_batch_closes_at_max_batch_and_per_frame_options_apply() -> None:
    client = InferenceClient(max_in_flight=5)
    for i in range(5):
        opts = DetectOptions(confidence=0.0, classes=frozenset({"car"}) if i % 2 else None)
        client.submit(frame(i), opts, tag=i)
    batcher = Batcher(MockBackend(), max_batch=2, max_wait_ms=1000)
    assert [batcher.step() for _ in range(3)] == [2, 2, 1]
    labels = []
    while client.in_flight:
        got = client.collect(wait=1.0)
        assert got is not None
        labels.append({b["label"] for b in got[1].boxes})
    assert labels == [{"person", "car"}, {"car"}, {"person", "car"}, {"car"}, {"person", "car"}]


def test_batch_closes_after_max_wait_with_what_it_has(monkeypatch: pytest.MonkeyPatch) -> None:
    # Runner loops are remembered for as long as this test may take on a loaded machine.
    monkeypatch.setattr(batcher_module, "CLIENT_MEMORY", 600.0)
    a, b = InferenceClient(), InferenceClient()
    batcher = Batcher(MockBackend(), max_batch=8, max_wait_ms=300)
    a.submit(frame(1), DetectOptions(), tag="a")
    b.submit(frame(2), DetectOptions(), tag="b")
    assert batcher.step() == 2
    assert a.collect(wait=5.0) is not None and b.collect(wait=5.0) is not None
    assert set(batcher.clients) == {a.id, b.id}  # two loops now: a batch waits for both

    a.submit(frame(3), DetectOptions(confidence=0.0), tag="alone")
    started = time.monotonic()
    assert batcher.step() == 1
    waited = time.monotonic() - started

    # Not full (1 < 8) and b never sent: only the max-wait deadline closes such a batch, and
    # not before it has passed. The other exits (full, every loop present) return at once.
    assert waited >= 0.3, waited
    got = a.collect(wait=5.0)
    assert got is not None
    assert got[0] == "alone"  # and step() said the batch held it alone


def test_a_batcher_thread_serves_concurrent_runners() -> None:
    batcher = Batcher(MockBackend(delay_ms=5), max_batch=8, max_wait_ms=5)
    thread = threading.Thread(target=batcher.run, daemon=True)
    thread.start()
    errors: list[str] = []

    def runner(r: int) -> None:
        client = InferenceClient(max_in_flight=2)
        for i in range(20):
            client.submit(frame(r * 20 + i), DetectOptions(confidence=0.0), tag=i)
            if client.full:
                got = client.collect(wait=5.0)
                if got is None:
                    errors.append(f"runner {r}: no answer")
                    return
        while client.in_flight:
            got = client.collect(wait=5.0)
            if got is None:
                errors.append(f"runner {r}: no answer")
                return

    try:
        threads = [threading.Thread(target=runner, args=(r,)) for r in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        batcher.stop_event.set()
        thread.join(5)
    assert errors == []
    assert batcher.frames == 80
    assert batcher.batches < 80  # frames from different runners were batched together


def test_a_loop_with_more_frames_in_flight_fills_its_batch_and_a_camera_never_waits() -> None:
    # A file keeps MISIS_MAX_IN_FLIGHT frames in flight: while the batch holds fewer of its
    # frames than that, more can come (they follow its answers within a millisecond or two),
    # so the batch waits for them up to max_wait rather than closing on the first one.
    batcher = Batcher(MockBackend(), max_batch=8, max_wait_ms=2000)
    file = InferenceClient(max_in_flight=3)
    file.submit(frame(1), DetectOptions(), tag=1)

    def send_the_rest() -> None:
        for i in (2, 3):
            file.submit(frame(i), DetectOptions(), tag=i)

    later = threading.Timer(0.1, send_the_rest)
    later.start()
    started = time.monotonic()
    assert batcher.step() == 3  # one batch: the first frame waited for the other two
    later.join()
    waited = time.monotonic() - started
    assert 0.1 <= waited < 2.0, waited  # closed once all three were in, not at max_wait
    assert batcher.clients[file.id][1] == 3  # its window
    for i in (1, 2, 3):
        got = file.collect(wait=5.0)
        assert got is not None and got[0] == i

    # A camera keeps one frame in flight: its batch closes at once, max_wait or not.
    alone = Batcher(MockBackend(), max_batch=8, max_wait_ms=2000)
    camera = InferenceClient(max_in_flight=1)
    camera.submit(frame(4), DetectOptions(), tag="now")
    started = time.monotonic()
    assert alone.step() == 1
    assert time.monotonic() - started < 1.0
    assert alone.clients[camera.id][1] == 1  # its window


class RefusesLargeSizes(MockBackend):
    """The mock detector, refusing what a TensorRT engine refuses: a size outside its profile."""

    def predict(self, frames: list[np.ndarray], options: list[DetectOptions]) -> list[list[Box]]:
        if any(o.imgsz > 1280 for o in options):
            raise ValueError("input size is outside the TensorRT optimization profile")
        return super().predict(frames, options)


def test_a_frame_the_runtime_refuses_costs_the_other_scenarios_nothing() -> None:
    # Hostile: one tenant's scenario asks for imgsz 4096. Its frame fails; the frames batched
    # with it are answered all the same (each alone), and only its own goes unanswered.
    good, bad = InferenceClient(max_in_flight=2), InferenceClient(max_in_flight=1)
    good.submit(frame(1), DetectOptions(confidence=0.0), tag="g1")
    bad.submit(frame(2), DetectOptions(imgsz=4096), tag="bad")
    good.submit(frame(3), DetectOptions(confidence=0.0), tag="g2")
    batcher = Batcher(RefusesLargeSizes(), max_batch=8, max_wait_ms=50)
    assert batcher.step() == 2
    for tag in ("g1", "g2"):
        got = good.collect(wait=2.0)
        assert got is not None and got[0] == tag
    assert bad.collect(wait=0.2) is None
