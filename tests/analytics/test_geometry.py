"""The geometry the events stand on: the contract's side of a line, crossings of the segment
itself, insides of a polygon, the anchor of a box."""

from __future__ import annotations

import pytest

from analytics.geometry import Area, anchor, crosses_segment, side

A, B = (0.5, 0.0), (0.5, 1.0)  # a vertical line down the middle


def test_side_follows_the_contract_formula() -> None:
    # side = (Bx-Ax)*(Py-Ay) - (By-Ay)*(Px-Ax): left of a downward line is positive ("in")
    assert side(A, B, (0.2, 0.5)) == pytest.approx(0.3)
    assert side(A, B, (0.8, 0.5)) == pytest.approx(-0.3)
    assert side(A, B, (0.5, 0.3)) == 0


def test_a_path_through_the_segment_crosses_in_both_directions() -> None:
    assert crosses_segment((0.2, 0.5), (0.8, 0.5), A, B)
    assert crosses_segment((0.8, 0.5), (0.2, 0.5), A, B)


def test_a_path_across_the_extension_does_not_cross() -> None:
    short = ((0.5, 0.0), (0.5, 0.4))
    assert not crosses_segment((0.2, 0.8), (0.8, 0.8), *short)
    assert crosses_segment((0.2, 0.2), (0.8, 0.2), *short)


def test_inside_and_outside_a_polygon_with_depth() -> None:
    door = Area(((0.1, 0.2), (0.5, 0.2), (0.5, 0.9), (0.1, 0.9)))
    assert door.depth((0.3, 0.5)) == pytest.approx(0.2)
    assert door.depth((0.7, 0.5)) == pytest.approx(-0.2)
    assert door.depth((0.5, 0.5)) == pytest.approx(0.0)


def test_anchor_is_the_middle_of_the_bottom_edge_in_fractions() -> None:
    box = {"x1": 100.0, "y1": 50.0, "x2": 300.0, "y2": 400.0}
    assert anchor(box, 800, 800) == (0.25, 0.5)
