"""Inference only where something moves: the motion gate on synthetic frames, the tracks over a
skipped stretch, and the runner's loop on real PostgreSQL and Redis with the mock detector (a
still file with the gate on against the same file with it off, and a live HLS stream of a still
scene, where the gate is on by default)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.db import connection
from pytest_django import Settings

from analytics.engine import FORGET_AFTER
from inference.backends.mock import MockBackend
from inference.batcher import Batcher
from misis import metrics
from runner.analytics_stage import AnalyticsStage
from runner.loop import WORKER_STOPPING, run_scenario
from runner.motion import Decision, MotionGate, Reason
from runner.samples import write_static_video
from runner.sources import Frame
from scenarios.control import signal_stop
from scenarios.models import Event, Prediction, Scenario, Status, StopReason
from scenarios.params import MOTION_MAX_GAP_RANGE, Params
from sources.decoder import Picture
from tests.factories import make_scenario

W, H = 320, 240
FPS = 25.0
STILL_FRAMES = 200  # 8 s at 25 fps: four gaps of the default 2 s


def scene(seed: int = 0) -> np.ndarray:
    """A fixed camera's view: a lit wall, a door and a window (float, noise added later)."""
    image = np.empty((H, W, 3), dtype=np.float32)
    image[:] = np.linspace(60, 190, W, dtype=np.float32)[None, :, None]
    image[120:235, 40:105] = (40, 70, 120)
    image[40:120, 160:280] = (200, 180, 150)
    return image


class Camera:
    """Frames of ``scene`` with fresh sensor noise each, at FPS by pts."""

    def __init__(self, noise: float = 6.0) -> None:
        self.rng = np.random.default_rng(7)
        self.noise = noise
        self.index = 0

    def frame(self, image: np.ndarray, pts: float | None = None) -> Frame:
        grain = self.rng.normal(0.0, self.noise, image.shape).astype(np.float32)
        pixels = np.clip(image + grain, 0, 255).astype(np.uint8)
        pts = self.index / FPS if pts is None else pts
        frame = Frame(self.index, pts, datetime.now(UTC), Picture.from_bgr(pixels))
        self.index += 1
        return frame


def with_square(image: np.ndarray, x: int, y: int, side: int = 30) -> np.ndarray:
    out = image.copy()
    out[y : y + side, x : x + side] = 235  # bright: grey is all the gate sees
    return out


def gate(max_gap: float = 2.0, threshold: float = 0.002) -> MotionGate:
    return MotionGate(max_gap=max_gap, threshold=threshold)


# --- the gate ---------------------------------------------------------------------------


def test_a_still_scene_with_sensor_noise_is_skipped_after_its_first_frame() -> None:
    g, camera, still = gate(), Camera(noise=10.0), scene()
    decisions = [g.decide(camera.frame(still)) for _ in range(40)]  # 1.6 s: within the gap
    assert decisions[0] == Decision(True, Reason.FIRST, after_skip=False)
    assert [d.reason for d in decisions[1:]] == [Reason.STILL] * 39
    assert not any(d.send for d in decisions[1:])


def test_a_moving_square_is_sent_every_frame() -> None:
    g, camera, still = gate(), Camera(), scene()
    decisions = [g.decide(camera.frame(with_square(still, 10 + 6 * i, 150))) for i in range(30)]
    assert all(d.send for d in decisions)
    assert {d.reason for d in decisions[1:]} == {Reason.NEW_OBJECT}  # nothing tracked yet


def test_a_tracked_object_that_moves_is_sent_and_one_that_stays_is_not() -> None:
    g, camera, still = gate(), Camera(), scene()
    assert g.decide(camera.frame(with_square(still, 150, 150))).reason is Reason.FIRST
    # The detector found the square: a box around it, in source pixels.
    g.observe([{"x1": 150, "y1": 150, "x2": 180, "y2": 180}], W, H)
    assert g.decide(camera.frame(with_square(still, 150, 150))).reason is Reason.STILL
    # It moves by a fifth of its width: the change stays inside the grown box, but covers
    # more than BOX_CHANGE of it.
    moved = g.decide(camera.frame(with_square(still, 156, 150)))
    assert (moved.send, moved.reason) == (True, Reason.MOTION)


def test_a_new_object_outside_the_tracked_boxes_is_sent_though_the_same_change_inside_is_not() -> (
    None
):
    g, camera = gate(threshold=0.002), Camera()
    person = with_square(scene(), 100, 100, side=60)
    g.decide(camera.frame(person))
    g.observe([{"x1": 100, "y1": 100, "x2": 160, "y2": 160}], W, H)
    # A small change (a 12 px patch: 0.19% of the frame) inside the tracked box: a person who
    # fidgets. Below BOX_CHANGE of the box, and nothing outside it: skipped.
    fidget = person.copy()
    fidget[125:137, 125:137] = 255
    assert g.decide(camera.frame(fidget)).reason is Reason.STILL
    # A small new thing (a 16 px square: 0.33% of the frame) where nothing is tracked: sent.
    newcomer = with_square(person, 260, 30, side=16)
    decision = g.decide(camera.frame(newcomer))
    assert (decision.send, decision.reason) == (True, Reason.NEW_OBJECT)


def test_a_scene_cut_is_sent() -> None:
    g, camera = gate(), Camera()
    g.decide(camera.frame(scene()))
    g.observe([{"x1": 0, "y1": 0, "x2": W, "y2": H}], W, H)  # even with the whole frame tracked
    other = 255.0 - scene()  # another camera, the lights, a cut
    decision = g.decide(camera.frame(other))
    assert (decision.send, decision.reason) == (True, Reason.SCENE)


def test_the_longest_gap_is_by_source_time_and_then_a_frame_is_sent() -> None:
    g, camera, still = gate(max_gap=1.0), Camera(), scene()
    sent = [f.pts for f in (camera.frame(still) for _ in range(76)) if g.decide(f).send]
    # Every second of source time at 25 fps, however fast the frames came (no clock here).
    assert sent == [0.0, 1.0, 2.0, 3.0]
    # A clock that runs backwards (a stream that restarted) is a gap as well.
    assert g.decide(camera.frame(still, pts=0.5)).reason is Reason.GAP


def test_the_first_frame_sent_after_a_skipped_stretch_says_so() -> None:
    g, camera, still = gate(max_gap=0.5), Camera(), scene()
    first = g.decide(camera.frame(still))
    skipped = [g.decide(camera.frame(still)) for _ in range(12)]  # pts 0.04 .. 0.48
    after = g.decide(camera.frame(still))  # pts 0.52
    assert not first.after_skip and not any(d.send for d in skipped)
    assert (after.send, after.reason, after.after_skip) == (True, Reason.GAP, True)
    moving = [g.decide(camera.frame(with_square(still, 10 + 6 * i, 150))) for i in range(3)]
    assert [d.after_skip for d in moving] == [False, False, False]


def test_a_new_shape_of_frame_is_sent_and_the_same_view_at_another_size_is_not() -> None:
    g, camera = gate(), Camera()
    g.decide(camera.frame(scene()))
    # The same view at half the resolution (a stream that came back in another profile) has
    # the same grey copy; boxes are kept as fractions of the frame.
    assert g.decide(camera.frame(scene()[::2, ::2].copy())).reason is Reason.STILL
    assert g.decide(camera.frame(scene()[:, : W // 2].copy())).reason is Reason.FIRST


# --- params -----------------------------------------------------------------------------


def test_the_gate_is_on_by_default_for_live_sources_only() -> None:
    assert Params().motion_on(live=True) and not Params().motion_on(live=False)
    assert Params.from_dict({"motion": True}).motion_on(live=False)
    assert not Params.from_dict({"motion": False}).motion_on(live=True)


def test_the_longest_gap_stays_well_below_the_time_after_which_a_track_is_forgotten() -> None:
    # A still object is seen by the detector only at the gap's frames: it must get at least two
    # chances before the analytics forget it (and write a zone_exit for a person who stayed).
    assert MOTION_MAX_GAP_RANGE.high * 2 <= FORGET_AFTER


# --- tracks over a skipped stretch ------------------------------------------------------

HALL = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
ZONE = {"zones": [{"name": "hall", "polygon": HALL, "classes": ["person"]}]}


def person(cx: float) -> dict[str, Any]:
    return {"label": "person", "class_id": 0, "confidence": 0.9,
            "x1": cx - 30, "y1": 40.0, "x2": cx + 30, "y2": 200.0}  # fmt: skip


def _track(after_skip: bool) -> tuple[list[Any], list[str]]:
    """A person walks in (5 frames at 5 fps), stands still while 4 s are skipped, walks on."""
    stage = AnalyticsStage(scenario_id="s", params=ZONE, state=None, events_total=0, fps=5)
    image = np.zeros((H, W, 3), dtype=np.uint8)
    ids: list[Any] = []
    events: list[str] = []
    steps = [(i, i / 5, 100 + 5 * i, False) for i in range(5)]
    steps += [(25, 5.0, 120, after_skip), (26, 5.2, 125, False), (27, 5.4, 130, False)]
    for index, pts, cx, skipped in steps:
        boxes = [person(cx)]
        rows = stage.process(
            frame_index=index,
            pts=pts,
            captured_at=datetime.now(UTC),
            image=image,
            boxes=boxes,
            after_skip=skipped,
        )
        ids.append(boxes[0]["track_id"])
        events += [r.facts.type for r in rows]
    return ids, events


@pytest.fixture
def _snapshots_in_tmp(settings: Settings, tmp_path: Path) -> None:
    settings.MISIS_VIDEO_ROOT = tmp_path


@pytest.mark.usefixtures("_snapshots_in_tmp")
def test_a_track_coasts_over_a_skipped_stretch() -> None:
    ids, events = _track(after_skip=True)
    assert ids[0] is None and len(set(ids[1:])) == 1 and ids[1] is not None
    assert events == ["zone_enter"]  # one visit: no exit, no second entry


@pytest.mark.usefixtures("_snapshots_in_tmp")
def test_without_the_skip_flag_the_gap_would_cost_the_track() -> None:
    # Why the flag exists: ByteTrack, told the real time, drops every track after a second.
    ids, events = _track(after_skip=False)
    assert ids[5] != ids[4]
    assert events.count("zone_enter") == 2


# --- the runner's loop ------------------------------------------------------------------


def _in_thread(target: Callable[[], Any]) -> threading.Thread:
    def body() -> None:
        try:
            target()
        finally:
            connection.close()

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def detector() -> Iterator[Batcher]:
    """The mock detector behind an in-process batcher on the test Redis; ``frames`` counts the
    frames it was given, i.e. the detector load."""
    batcher = Batcher(MockBackend(), max_batch=4, max_wait_ms=2)
    thread = _in_thread(batcher.run)
    yield batcher
    batcher.stop_event.set()
    thread.join(timeout=5)


@pytest.fixture
def still_video(video_root: Path) -> str:
    path = video_root / "still.mp4"
    if not path.exists():
        write_static_video(path, frames=STILL_FRAMES, fps=FPS)
    return path.name


@pytest.fixture(autouse=True)
def _worker_running() -> Iterator[None]:
    WORKER_STOPPING.clear()
    yield
    WORKER_STOPPING.clear()


def _run_file(source: str, detector: Batcher, **params: Any) -> tuple[Scenario, int]:
    s = make_scenario(Status.IN_STARTUP_PROCESSING, source=source, params=params)
    s.refresh_from_db()
    before = detector.frames
    run_scenario(str(s.pk), s.epoch)
    s.refresh_from_db()
    assert (s.status, s.stop_reason) == (Status.INACTIVE, StopReason.END_OF_STREAM)
    return s, detector.frames - before


@pytest.mark.django_db(transaction=True)
def test_a_still_file_with_the_gate_on_costs_at_least_80_percent_fewer_detector_calls(
    detector: Batcher, still_video: str
) -> None:
    off, calls_off = _run_file(still_video, detector)  # a file: the gate is off by default
    on, calls_on = _run_file(still_video, detector, motion=True)

    assert (calls_off, off.frames_processed, off.frames_skipped) == (STILL_FRAMES,) * 2 + (0,)
    assert calls_on <= 0.2 * calls_off, (calls_on, calls_off)
    # The first frame and one every 2 s of source time (50 frames): 0, 50, 100, 150.
    sent = list(
        Prediction.objects.filter(scenario=on).order_by("frame_index").values_list("frame_index")
    )
    assert [i for (i,) in sent] == [0, 50, 100, 150]
    assert on.frames_processed == calls_on == 4
    assert on.frames_skipped == STILL_FRAMES - calls_on
    assert on.next_frame == STILL_FRAMES  # skipped frames lie below the frontier too
    # And /metrics counts them beside the dropped ones.
    assert f"misis_frames_skipped_total {STILL_FRAMES - 4}\n" in metrics.render()


@pytest.mark.django_db(transaction=True)
def test_tracks_and_zones_keep_their_objects_over_skipped_stretches(
    detector: Batcher, still_video: str
) -> None:
    on, _ = _run_file(still_video, detector, motion=True, **ZONE)
    rows = Prediction.objects.filter(scenario=on).order_by("frame_index")
    people = [[b["track_id"] for b in r.boxes if b["label"] == "person"] for r in rows]
    # The mock detector's person stands in the middle; over 2 s gaps it keeps its track.
    assert people[0] == [None]
    assert len({tuple(p) for p in people[1:]}) == 1 and people[1][0] is not None
    assert list(Event.objects.filter(scenario=on).values_list("type", flat=True)) == ["zone_enter"]


@pytest.fixture
def _short_timeouts(settings: Settings) -> None:
    settings.MISIS_STREAM_OPEN_TIMEOUT = 5
    settings.MISIS_STREAM_READ_TIMEOUT = 3
    settings.MISIS_HLS_READ_TIMEOUT = 3
    settings.MISIS_HEARTBEAT_INTERVAL = 0.2


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_short_timeouts")
def test_a_live_stream_of_a_still_scene_is_gated_by_default(
    detector: Batcher, still_video: str, http_stream_server: Any
) -> None:
    url = http_stream_server.url(f"hls/live/{still_video.removesuffix('.mp4')}.m3u8")
    s = make_scenario(Status.IN_STARTUP_PROCESSING, source=url, params={})
    s.refresh_from_db()
    runner = _in_thread(lambda: run_scenario(str(s.pk), s.epoch))
    try:
        deadline = time.monotonic() + 30
        while Scenario.objects.get(pk=s.pk).frames_skipped < 60:
            assert runner.is_alive() and time.monotonic() < deadline, "too little was skipped"
            time.sleep(0.1)
    finally:
        signal_stop(s.pk, s.epoch)
        runner.join(timeout=10)
    assert not runner.is_alive()
    s.refresh_from_db()
    assert (s.status, s.stop_reason) == (Status.INACTIVE, StopReason.REQUESTED)
    gated = s.frames_processed + s.frames_skipped
    assert s.frames_processed >= 1
    assert s.frames_skipped >= 0.8 * gated, (s.frames_processed, s.frames_skipped)
    assert Prediction.objects.filter(scenario=s).count() == s.frames_processed
