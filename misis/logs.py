"""Log records that carry the scenario they are about, as text or as JSON lines.

The runner sets ``scenario_context`` for the life of a scenario's loop; every record logged
in that thread then has ``scenario_id``, whatever module logs it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

scenario_id_var: ContextVar[str | None] = ContextVar("scenario_id", default=None)


@contextmanager
def scenario_context(scenario_id: str) -> Iterator[None]:
    token = scenario_id_var.set(scenario_id)
    try:
        yield
    finally:
        scenario_id_var.reset(token)


class ScenarioFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "scenario_id"):
            record.scenario_id = scenario_id_var.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers (MISIS_LOG_FORMAT=json)."""

    def format(self, record: logging.LogRecord) -> str:
        body = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
            "scenario_id": getattr(record, "scenario_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return json.dumps(body)
