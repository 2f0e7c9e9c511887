"""The analytics step of the frame loop: for each analysed frame, in frame order, track ids
on its boxes, the events it makes, and their snapshots.

The state (tracker, zones, lines, the sampler's clock, the event count) is handed to every
publish and saved in the same fenced transaction as the predictions and events up to the
publish's frontier, so a runner that takes over resumes it exactly: for a file source the
events come out the same whether or not a runner was replaced mid-way.
"""

from __future__ import annotations

import logging
import pickle
from datetime import datetime
from typing import Any

import numpy as np
from django.core.files.base import ContentFile

from analytics.config import AnalyticsConfig
from analytics.draw import overlay, snapshot
from analytics.engine import Analytics, Event
from scenarios.event_writes import EventRow
from scenarios.snapshots import snapshot_name
from sources.storage import video_storage

logger = logging.getLogger(__name__)


class AnalyticsStage:
    def __init__(
        self,
        *,
        scenario_id: str,
        params: dict[str, Any],
        state: bytes | None,
        events_total: int,
        fps: float,
    ) -> None:
        self.scenario_id = scenario_id
        self.config = AnalyticsConfig.from_params(params)
        saved = _load(scenario_id, state)
        engine_state = saved.get("engine")
        self.engine = None
        if self.config.enabled:
            try:
                self.engine = Analytics(self.config, fps=fps, state=engine_state)
            except Exception:
                # A state this version cannot read (written by an older one): go on with fresh
                # tracks rather than fail every restart; events may then differ from one run.
                logger.warning(
                    "scenario %s: saved analytics state unreadable; starting fresh tracks",
                    scenario_id,
                    exc_info=True,
                )
                self.engine = Analytics(self.config, fps=fps)
        self.sampler_next_pts: float | None = saved.get("sampler_next_pts")
        self.events_total = events_total

    @property
    def enabled(self) -> bool:
        return self.engine is not None

    def process(
        self,
        *,
        frame_index: int,
        pts: float,
        captured_at: datetime,
        image: np.ndarray,
        boxes: list[dict[str, Any]],
    ) -> list[EventRow]:
        """Give ``boxes`` their ``track_id`` (in place) and return this frame's events."""
        if self.engine is None:
            return []
        height, width = image.shape[:2]
        ids, events = self.engine.process(
            frame_index=frame_index, pts=pts, width=width, height=height, boxes=boxes
        )
        for box, track_id in zip(boxes, ids, strict=True):
            box["track_id"] = track_id
        rows = []
        for event in events:
            self.events_total += 1
            rows.append(EventRow(self.events_total, event, captured_at, self._store(image, event)))
        return rows

    def _store(self, image: np.ndarray, event: Event) -> str:
        """The snapshot, stored before the publish that writes its event (a runner that dies
        in between leaves a file the next one writes again under a new name)."""
        name = snapshot_name(self.scenario_id, self.events_total)
        try:
            return video_storage().save(name, ContentFile(snapshot(image, event, self.config)))
        except Exception:
            logger.warning(
                "scenario %s: snapshot %s not stored", self.scenario_id, name, exc_info=True
            )
            return ""

    def overlay(self, image: np.ndarray) -> None:
        if self.engine is not None:
            overlay(image, self.config, self.engine.counts)

    @property
    def counts(self) -> dict[str, Any] | None:
        return self.engine.counts if self.engine is not None else None

    def dump(self, sampler_next_pts: float | None) -> bytes:
        """What the publish saves beside ``next_frame``."""
        engine = self.engine.dump() if self.engine is not None else None
        return pickle.dumps({"engine": engine, "sampler_next_pts": sampler_next_pts})


def _load(scenario_id: str, state: bytes | None) -> dict[str, Any]:
    """The saved state (written by runners only, never by users), or {} if unreadable."""
    if not state:
        return {}
    try:
        saved = pickle.loads(state)
    except Exception:
        logger.warning("scenario %s: saved runner state unreadable; starting fresh", scenario_id)
        return {}
    return saved if isinstance(saved, dict) else {}
