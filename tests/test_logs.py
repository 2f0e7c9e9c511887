from __future__ import annotations

import json
import logging

from misis.logs import JsonFormatter, ScenarioFilter, scenario_context


def test_records_carry_the_scenario_of_the_runner_thread() -> None:
    record = logging.LogRecord("runner.loop", logging.INFO, __file__, 1, "frame %d", (7,), None)
    with scenario_context("sid-1"):
        assert ScenarioFilter().filter(record)
    body = json.loads(JsonFormatter().format(record))
    assert body["scenario_id"] == "sid-1"
    assert body["message"] == "frame 7"
    assert body["level"] == "INFO"
    outside = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
    ScenarioFilter().filter(outside)
    assert outside.scenario_id == "-"  # type: ignore[attr-defined]
