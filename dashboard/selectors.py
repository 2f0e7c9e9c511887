"""What the dashboard shows: the user's scenarios (staff: everyone's) and the sources offered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.urls import reverse

from scenarios import selectors
from scenarios.models import Scenario
from scenarios.serializers import ScenarioSerializer
from sources.models import Upload

# Cards on the page, newest first; the API's GET /scenario/ pages through the rest.
GRID_LIMIT = 100
# Offered as sources: files of the video root itself (the bundled samples; not its folders,
# where uploads live) and the user's own uploads.
VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".avi", ".mov", ".webm", ".ts", ".m4v"})
CHOICES_LIMIT = 50


def dashboard_scenarios(*, user: AbstractBaseUser | AnonymousUser) -> list[Scenario]:
    """The newest GRID_LIMIT scenarios ``user`` may see (scenarios.selectors decides which)."""
    return list(selectors.scenario_list(user=user)[:GRID_LIMIT])


def scenario_card(scenario: Scenario) -> dict[str, Any]:
    """A card's data: the API's scenario (source redacted, webhook secret masked), less its
    signed preview link (the page's session opens the frame), plus the URLs the card uses."""
    data = dict(ScenarioSerializer(scenario).data)
    data.pop("preview_url", None)
    sid = str(scenario.pk)
    data["count_lines"] = count_lines(scenario.counts or {})
    data["frame_url"] = reverse("scenario-frame", args=[sid])
    data["actions"] = {
        "stop": reverse("dashboard-stop", args=[sid]),
        "start": reverse("dashboard-start", args=[sid]),
        "delete": reverse("dashboard-delete", args=[sid]),
    }
    return data


def count_lines(counts: dict[str, Any]) -> list[str]:
    """The live counts as short lines: ``line entry: in 3, out 1``, ``zone door: inside 1, ...``."""
    lines = []
    for kind, key in (("line", "lines"), ("zone", "zones")):
        for name, values in sorted((counts.get(key) or {}).items()):
            if isinstance(values, dict):
                text = ", ".join(f"{k} {v}" for k, v in values.items())
                lines.append(f"{kind} {name}: {text}")
    return lines


def source_choices(*, user: AbstractBaseUser | AnonymousUser) -> list[str]:
    """Sources to pick from: sample videos at the top of the video root, then own uploads."""
    root = Path(settings.MISIS_VIDEO_ROOT)
    try:
        samples = sorted(
            p.name
            for p in root.iterdir()
            if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file() and not p.is_symlink()
        )
    except OSError:
        samples = []
    uploads = list(
        Upload.objects.filter(owner_id=user.pk)
        .order_by("-created_at")
        .values_list("source", flat=True)[:CHOICES_LIMIT]
    )
    return samples[:CHOICES_LIMIT] + uploads
