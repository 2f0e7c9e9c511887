"""Reads. Owner scoping lives here: another user's scenario does not exist for you."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet
from django.http import Http404

from scenarios.models import Prediction, Scenario

MAX_PAGE = 1000
DEFAULT_PAGE = 100


def scenario_visible(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Scenario]:
    qs = Scenario.objects.all()
    if getattr(user, "is_staff", False):
        return qs
    return qs.filter(owner_id=user.pk)


def scenario_get(*, user: AbstractBaseUser | AnonymousUser, scenario_id: object) -> Scenario:
    try:
        pk = uuid.UUID(str(scenario_id))
    except ValueError:
        raise Http404("no such scenario") from None
    scenario = scenario_visible(user).filter(pk=pk).first()
    if scenario is None:
        raise Http404("no such scenario")
    return scenario


PREDICTION_FIELDS = (
    "frame_index",
    "pts",
    "captured_at",
    "width",
    "height",
    "inference_ms",
    "boxes",
)


def prediction_page(*, scenario: Scenario, after: int | None, limit: int) -> list[dict[str, Any]]:
    """One page by frame_index, as plain dicts (no model instances on this hot path).

    The (scenario, frame_index) unique index serves it as one index range scan.
    """
    qs = Prediction.objects.filter(scenario_id=scenario.pk)
    if after is not None:
        qs = qs.filter(frame_index__gt=after)
    return list(qs.order_by("frame_index").values(*PREDICTION_FIELDS)[:limit])
