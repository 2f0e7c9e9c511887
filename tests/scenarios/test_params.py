"""Params: one definition of each default and range, as the API documents and checks them."""

from __future__ import annotations

import math
from typing import Any

import pytest
from rest_framework.test import APIClient

from inference.backends.base import DetectOptions
from scenarios.models import Scenario
from scenarios.params import (
    DEFAULT_CONFIDENCE,
    DEFAULT_IMGSZ,
    DEFAULT_MOTION,
    DEFAULT_MOTION_MAX_GAP,
    DEFAULT_MOTION_THRESHOLD,
    IMGSZ_RANGE,
    MOTION_MAX_GAP_RANGE,
    MOTION_THRESHOLD_RANGE,
    TARGET_FPS_RANGE,
    Params,
    ParamsError,
    validate_params,
)


def test_missing_params_take_the_same_defaults_everywhere() -> None:
    params = Params.from_dict({})
    assert params == Params()
    assert (params.confidence, params.imgsz) == (DEFAULT_CONFIDENCE, DEFAULT_IMGSZ)
    options = DetectOptions()
    assert (options.confidence, options.classes, options.imgsz) == (
        params.confidence,
        params.classes,
        params.imgsz,
    )


def test_a_range_is_written_as_the_api_documents_it() -> None:
    assert str(TARGET_FPS_RANGE) == "(0, 240]"
    assert str(IMGSZ_RANGE) == "[32, 4096]"


@pytest.mark.parametrize("value", [0, -1, 240.0001, math.nan, math.inf])
def test_an_open_low_end_and_non_numbers_are_out_of_range(value: float) -> None:
    assert value not in TARGET_FPS_RANGE
    with pytest.raises(ParamsError) as refused:
        validate_params({"target_fps": value})
    assert refused.value.errors == {"target_fps": "must be a number in (0, 240]"}


@pytest.mark.parametrize("value", [32, 4096])
def test_a_closed_range_holds_its_ends(value: int) -> None:
    assert value in IMGSZ_RANGE
    assert validate_params({"imgsz": value}) == {"imgsz": value}


# --- the motion gate's params (runner/motion.py) -----------------------------------------


def test_the_motion_params_default_to_the_gate_on_for_live_sources_only() -> None:
    params = Params.from_dict({})
    assert params.motion is DEFAULT_MOTION is None
    assert (params.motion_max_gap, params.motion_threshold) == (
        DEFAULT_MOTION_MAX_GAP,
        DEFAULT_MOTION_THRESHOLD,
    )
    assert DEFAULT_MOTION_MAX_GAP in MOTION_MAX_GAP_RANGE
    assert DEFAULT_MOTION_THRESHOLD in MOTION_THRESHOLD_RANGE
    given = Params.from_dict({"motion": True, "motion_max_gap": 5, "motion_threshold": 0.05})
    assert (given.motion, given.motion_max_gap, given.motion_threshold) == (True, 5, 0.05)


@pytest.mark.parametrize(
    "params",
    [
        {"motion": True},
        {"motion": False},
        {"motion_max_gap": 5},
        {"motion_max_gap": 0.04},
        {"motion_threshold": 1},
        {"motion_threshold": 0.0001},
    ],
)
def test_motion_params_in_range_are_taken(params: dict[str, Any]) -> None:
    assert validate_params(params) == params


@pytest.mark.parametrize(
    ("param", "value", "message"),
    [
        ("motion", "yes", "must be true or false"),
        ("motion", 1, "must be true or false"),
        ("motion", None, "must be true or false"),
        ("motion_max_gap", 0, "must be seconds in (0, 5]"),
        ("motion_max_gap", -1, "must be seconds in (0, 5]"),
        ("motion_max_gap", 5.01, "must be seconds in (0, 5]"),
        ("motion_max_gap", "2", "must be seconds in (0, 5]"),
        ("motion_max_gap", True, "must be seconds in (0, 5]"),
        ("motion_max_gap", math.nan, "must be seconds in (0, 5]"),
        ("motion_threshold", 0, "must be a number in (0, 1]"),
        ("motion_threshold", 1.5, "must be a number in (0, 1]"),
        ("motion_threshold", "0.01", "must be a number in (0, 1]"),
        ("motion_threshold", math.inf, "must be a number in (0, 1]"),
    ],
)
def test_a_bad_motion_param_is_named(param: str, value: Any, message: str) -> None:
    with pytest.raises(ParamsError) as refused:
        validate_params({param: value})
    assert refused.value.errors == {param: message}


@pytest.mark.django_db
def test_the_api_refuses_a_bad_motion_param_with_a_400_naming_it_and_creates_nothing(
    api: APIClient,
) -> None:
    body = {"source": "short.mp4", "params": {"motion": "on", "motion_max_gap": 60}}
    resp = api.post("/scenario/", body, format="json")
    assert resp.status_code == 400, resp.content
    assert resp.json() == {
        "params": {
            "motion": "must be true or false",
            "motion_max_gap": "must be seconds in (0, 5]",
        }
    }
    assert not Scenario.objects.exists()


@pytest.mark.django_db
def test_the_scenario_shows_its_motion_params_and_frames_skipped(api: APIClient) -> None:
    params = {"motion": True, "motion_max_gap": 1.5, "motion_threshold": 0.01}
    created = api.post("/scenario/", {"source": "short.mp4", "params": params}, format="json")
    assert created.status_code == 201, created.content
    scenario_id = created.json()["id"]
    Scenario.objects.filter(pk=scenario_id).update(frames_skipped=42)
    shown = api.get(f"/scenario/{scenario_id}/").json()
    assert (shown["params"], shown["frames_skipped"]) == (params, 42)
