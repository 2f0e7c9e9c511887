"""Reads. Owner scoping lives here: another user's scenario does not exist for you."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core import signing
from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, Lookup, Q, QuerySet
from django.db.models.sql.compiler import SQLCompiler
from django.http import Http404
from django.utils.dateparse import parse_datetime

from misis.exceptions import ApiError
from scenarios.models import PREDICTION_FIELDS, Event, Scenario

MAX_PAGE = 1000
DEFAULT_PAGE = 100


def scenario_visible(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Scenario]:
    qs = Scenario.objects.all()
    if getattr(user, "is_staff", False):
        return qs
    return qs.filter(owner_id=user.pk)


def scenario_get(*, user: AbstractBaseUser | AnonymousUser, scenario_id: object) -> Scenario:
    scenario = scenario_visible(user).filter(pk=scenario_pk(scenario_id)).first()
    if scenario is None:
        raise Http404("no such scenario")
    return scenario


# --- GET /scenario/: the caller's scenarios, newest first, by keyset cursor ----------------------

SCENARIO_PAGE = 50
SCENARIO_PAGE_MAX = 500
NAME_FILTER_MAX = 200  # Scenario.name's max_length: a longer substring matches nothing anyway
_CURSOR_SALT = "scenarios.list.cursor"


class BadListQuery(ApiError):
    """A query parameter of GET /scenario/ the list cannot take (HTTP 400, naming it)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field

    def body(self) -> dict[str, list[str]]:
        return {self.field: [str(self)]}


class _ILike(Lookup[str]):
    """``lhs ILIKE rhs``, which a pg_trgm index serves (Django's ``icontains`` is
    ``UPPER(lhs) LIKE UPPER(rhs)``, which it does not). Used as an expression, not registered."""

    lookup_name = "ilike"

    def as_sql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper
    ) -> tuple[str, tuple[str | int, ...]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} ILIKE {rhs}", (*lhs_params, *rhs_params)


def _name_contains(text: str) -> _ILike:
    """Names containing ``text``, ignoring case; ``%``, ``_`` and ``\\`` in it are literal."""
    return _ILike(F("name"), f"%{connection.ops.prep_for_like_query(text)}%")


@dataclass(frozen=True)
class ScenarioPage:
    results: list[Scenario]
    next_cursor: str | None  # None: this is the last page


def _cursor(scenario: Scenario) -> str:
    """The position after ``scenario``: its (created_at, id), signed so that it is opaque and
    cannot be forged (it only ever narrows the caller's own scenarios, but an unsigned one
    would invite guessing at the format)."""
    return signing.dumps([scenario.created_at.isoformat(), str(scenario.pk)], salt=_CURSOR_SALT)


def _position(cursor: str) -> tuple[datetime, uuid.UUID]:
    bad = BadListQuery("cursor", "not a cursor of this list: pass on the one in `next`")
    try:
        created, pk = signing.loads(cursor, salt=_CURSOR_SALT)
        at = parse_datetime(created)
        pk = uuid.UUID(pk)
    except (signing.BadSignature, ValueError, TypeError):
        raise bad from None
    if at is None or at.tzinfo is None:
        raise bad
    return at, pk


def scenario_list(
    *,
    user: AbstractBaseUser | AnonymousUser,
    cursor: str | None = None,
    statuses: Sequence[str] = (),
    name: str | None = None,
) -> QuerySet[Scenario]:
    """The scenarios ``user`` may see (staff: all), newest first (``(created_at, id)``
    descending), after ``cursor``; only ``statuses`` when given, only names containing ``name``
    (ignoring case) when given. Input is already validated but for the cursor
    (``BadListQuery``).

    Each filter and the order have an index (migration ``scenario_list_indexes``): the owner's
    or the status's ``(…, created_at, id)`` b-tree is read in order and stops after a page; a
    name is looked up in the trigram index of ``name``.
    """
    qs = scenario_visible(user).defer("analytics_state")
    if statuses:
        qs = qs.filter(status__in=sorted(set(statuses)))
    if name:
        qs = qs.filter(_name_contains(name))
    if cursor is not None:
        at, pk = _position(cursor)
        # (created_at, id) < (at, pk), written so that created_at <= at bounds the index scan.
        qs = qs.filter(Q(created_at__lte=at), Q(created_at__lt=at) | Q(pk__lt=pk))
    return qs.order_by("-created_at", "-id")


def scenario_page(
    *,
    user: AbstractBaseUser | AnonymousUser,
    limit: int,
    cursor: str | None = None,
    statuses: Sequence[str] = (),
    name: str | None = None,
) -> ScenarioPage:
    """One page of ``scenario_list``: at most ``limit`` scenarios, and the cursor of the next."""
    qs = scenario_list(user=user, cursor=cursor, statuses=statuses, name=name)
    rows = list(qs[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return ScenarioPage(results=rows, next_cursor=_cursor(rows[-1]) if more else None)


# How a field is written in the page's JSON, where not its column as it is.
_JSON_VALUE = {
    "captured_at": """to_char(p.captured_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')""",
}
_RESULT = ",\n    ".join(
    f"'{name}', {_JSON_VALUE.get(name, f'p.{name}')}" for name in PREDICTION_FIELDS
)

# The page is rendered to JSON by PostgreSQL: rows never become Python objects, which is most of
# the cost of a 1000-row page. The inner query is one range scan of each day partition's
# (scenario_id, frame_index) unique index, merged. The scenario's row comes in the same query,
# from ``scenario_visible`` (the owner scoping's one place): a poll is one round trip (a client
# polling for the newest frame waits for each one). The page is a LATERAL subquery of that row,
# so it is not run at all for a scenario the user may not see (no time spent on another user's
# rows). Only constant names and Django's compiled query are formatted into it.
_PAGE_SQL = f"""
SELECT s.status, page.count, page.last, page.body
FROM ({{visible}}) AS s CROSS JOIN LATERAL (
    SELECT count(*) AS count, max(p.frame_index) AS last, coalesce(json_agg(json_build_object(
        {_RESULT}
    ) ORDER BY p.frame_index), '[]')::text AS body
    FROM (
        SELECT * FROM scenarios_prediction
        WHERE scenario_id = s.id AND frame_index > %s
        ORDER BY frame_index
        LIMIT %s
    ) AS p
) AS page
"""


@dataclass(frozen=True)
class PredictionPage:
    scenario_id: uuid.UUID
    status: str  # the scenario's, as of the same snapshot as the rows
    count: int
    last_frame_index: int | None
    results_json: str  # a JSON array, ready to embed


def scenario_pk(scenario_id: object) -> uuid.UUID:
    """The scenario id of a URL; not a UUID is a scenario that does not exist (404)."""
    try:
        return uuid.UUID(str(scenario_id))
    except ValueError:
        raise Http404("no such scenario") from None


def prediction_page_query(
    *,
    user: AbstractBaseUser | AnonymousUser,
    scenario_id: uuid.UUID,
    after: int | None,
    limit: int,
) -> tuple[str, tuple[Any, ...]]:
    """The page's SQL and its parameters (bench/retention.py explains it)."""
    row = scenario_visible(user).filter(pk=scenario_id).order_by().values_list("id", "status")
    visible, params = row.query.sql_with_params()
    return _PAGE_SQL.format(visible=visible), (*params, -1 if after is None else after, limit)


def prediction_page(
    *,
    user: AbstractBaseUser | AnonymousUser,
    scenario_id: uuid.UUID,
    after: int | None,
    limit: int,
) -> PredictionPage:
    """Predictions of a scenario the user may see (else 404) with ``frame_index > after``,
    ascending, at most ``limit`` of them, and the scenario's status: one query."""
    sql, params = prediction_page_query(
        user=user, scenario_id=scenario_id, after=after, limit=limit
    )
    with connection.cursor() as cur:
        cur.execute(sql, params)
        row = cur.fetchone()
    if row is None:
        raise Http404("no such scenario")
    status, count, last, body = row
    return PredictionPage(scenario_id, status, count, last, body)


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
