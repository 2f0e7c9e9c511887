"""Reads. Owner scoping lives here: another user's scenario does not exist for you."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection
from django.db.models import QuerySet
from django.http import Http404

from scenarios.models import PREDICTION_FIELDS, Event, Scenario

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


# How a field is written in the page's JSON, where not its column as it is.
_JSON_VALUE = {
    "captured_at": """to_char(p.captured_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')""",
}
_RESULT = ",\n    ".join(
    f"'{name}', {_JSON_VALUE.get(name, f'p.{name}')}" for name in PREDICTION_FIELDS
)

# The page is rendered to JSON by PostgreSQL: rows never become Python objects, which is most of
# the cost of a 1000-row page. The inner query is one range scan of each day partition's
# (scenario_id, frame_index) unique index, merged. Only constant names are formatted into it.
_PAGE_SQL = f"""
SELECT count(*), max(p.frame_index), coalesce(json_agg(json_build_object(
    {_RESULT}
) ORDER BY p.frame_index), '[]')::text
FROM (
    SELECT * FROM scenarios_prediction
    WHERE scenario_id = %s AND frame_index > %s
    ORDER BY frame_index
    LIMIT %s
) AS p
"""


@dataclass(frozen=True)
class PredictionPage:
    count: int
    last_frame_index: int | None
    results_json: str  # a JSON array, ready to embed


def prediction_page(*, scenario: Scenario, after: int | None, limit: int) -> PredictionPage:
    """Predictions with ``frame_index > after``, ascending, at most ``limit`` of them."""
    with connection.cursor() as cur:
        cur.execute(_PAGE_SQL, [scenario.pk, -1 if after is None else after, limit])
        count, last, body = cur.fetchone()
    return PredictionPage(count=count, last_frame_index=last, results_json=body)


EVENT_PAGE = 100


def event_page(
    *, scenario: Scenario, after: int | None, limit: int, types: list[str]
) -> list[Event]:
    """Events with ``seq > after``, ascending, at most ``limit``; only ``types`` when given.

    One range scan of the (scenario, seq) unique index.
    """
    qs = Event.objects.filter(scenario=scenario, seq__gt=-1 if after is None else after)
    if types:
        qs = qs.filter(type__in=types)
    return list(qs.order_by("seq")[:limit])


def event_get(*, scenario: Scenario, seq: int) -> Event:
    event = Event.objects.filter(scenario=scenario, seq=seq).first()
    if event is None:
        raise Http404("no such event")
    return event
