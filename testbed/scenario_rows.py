"""Many scenario rows at once, written by PostgreSQL itself (the list's tests and bench).

Like a real fleet: most scenarios are ``inactive``, 1% are in each other status; 1 in
``door_every`` is named "… door", the others "… yard"; owners take turns; ``created_at`` is one
second apart, the newest last.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import connection

from scenarios.models import Status

# One status in a hundred rows each (by g % 100); the rest are inactive.
RARE = (
    Status.ACTIVE,
    Status.INIT_STARTUP,
    Status.IN_STARTUP_PROCESSING,
    Status.INIT_SHUTDOWN,
    Status.IN_SHUTDOWN_PROCESSING,
)

_INSERT = """
INSERT INTO scenarios_scenario
    (id, owner_id, name, source, params, status, created_at, updated_at, epoch,
     frames_processed, frames_dropped, frames_skipped, next_frame, fps, restarts,
     failed_restarts, reconnects, counts, events_total)
SELECT gen_random_uuid(),
       (%(owners)s::bigint[])[1 + g %% cardinality(%(owners)s::bigint[])],
       'camera ' || g || CASE WHEN g %% %(door_every)s = 0 THEN ' door' ELSE ' yard' END,
       'short.mp4', '{}'::jsonb,
       coalesce((%(rare)s::text[])[1 + g %% 100], %(common)s),
       %(start)s + g * interval '1 second', %(start)s + g * interval '1 second',
       1, 0, 0, 0, 0, 0, 0, 0, 0, '{}'::jsonb, 0
FROM generate_series(0, %(count)s - 1) AS g
"""


def insert_scenarios(
    *,
    owner_ids: list[int],
    count: int,
    door_every: int = 100,
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC),
) -> None:
    """``count`` scenarios of ``owner_ids`` in turn; then ANALYZE, as autovacuum would."""
    with connection.cursor() as cur:
        cur.execute(
            _INSERT,
            {
                "owners": owner_ids,
                "count": count,
                "door_every": door_every,
                "rare": [str(s) for s in RARE],
                "common": str(Status.INACTIVE),
                "start": start,
            },
        )
        cur.execute("ANALYZE scenarios_scenario")
