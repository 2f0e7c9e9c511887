"""Params: one definition of each default and range, as the API documents and checks them."""

from __future__ import annotations

import math

import pytest

from inference.backends.base import DetectOptions
from scenarios.params import (
    DEFAULT_CONFIDENCE,
    DEFAULT_IMGSZ,
    IMGSZ_RANGE,
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
