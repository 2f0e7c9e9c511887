"""Retention: predictions and events are kept for MISIS_RETENTION, a scenario's
``params.retention`` may shorten it.

Both tables are partitioned by day on ``created_at`` (the time the row was written, never the
source's ``captured_at``), with django-postgres-extra: its schema editor writes the DDL
(partitioned table, ``CREATE TABLE ... PARTITION OF``, ``DROP TABLE``), its time partitions
name and bound each day, its introspection lists them. ``sweep`` (the beat task
``scenarios.retention``) creates the partitions of today and MISIS_PARTITIONS_AHEAD days after
it, drops the partitions whose every row is older than MISIS_RETENTION (the snapshots of their
events first), then deletes, in small batches, the rows of scenarios whose ``params.retention``
is shorter. Each DDL statement waits at most MISIS_RETENTION_LOCK_TIMEOUT for its lock; one that
cannot get it is retried at the next sweep, so a long read never queues the writers behind a
partition drop for long.

The uniqueness of ``(scenario, frame_index)`` and ``(scenario, seq)``: PostgreSQL can enforce a
unique index of a partitioned table only when it holds the partition key, which would make it
useless here. Instead: (1) ``runner_publish`` inserts, under the scenario's row lock and the
epoch fence, only frames at or above the scenario's ``next_frame`` and events above its
``events_total``, then raises both (the high-water marks are the serialization point: a frame
below the mark is refused, in whichever partition it would land); (2) every partition has a
unique index on the pair (created here, with the partition), which also serves the ``?after=``
pages: one index scan per partition, merged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from django.conf import settings
from django.db import connection, models, transaction
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.utils import timezone
from psqlextra.backend.schema import PostgresSchemaEditor
from psqlextra.models import PostgresPartitionedModel
from psqlextra.models.options import PostgresPartitionedModelOptions
from psqlextra.partitioning import PostgresTimePartition, PostgresTimePartitionSize
from psqlextra.partitioning.constants import AUTO_PARTITIONED_COMMENT
from psqlextra.types import PostgresPartitioningMethod

from misis.settings.retention import parse_duration
from scenarios.models import Event, Prediction, Scenario
from sources.storage import video_storage

logger = logging.getLogger(__name__)

DAY = PostgresTimePartitionSize(days=1)
# A partition's name is its table's name plus the day: scenarios_prediction_20261201.
NAME_FORMAT = "%Y%m%d"
PARTITIONING = PostgresPartitionedModelOptions(
    method=PostgresPartitioningMethod.RANGE, key=["created_at"]
)


@dataclass(frozen=True)
class Partitioned:
    """A table partitioned by day, and the pair of columns unique in each partition."""

    model: type[models.Model]
    unique: tuple[str, str]


PREDICTIONS = Partitioned(Prediction, ("scenario_id", "frame_index"))
EVENTS = Partitioned(Event, ("scenario_id", "seq"))
TABLES = (PREDICTIONS, EVENTS)


def partitioned(model: type[models.Model]) -> type[PostgresPartitionedModel]:
    """``model`` as psqlextra's schema editor wants it: with its partitioning options (all it
    reads of a model besides ``_meta``).

    The models stay plain Django models (a single ``id`` primary key to the ORM, the admin and
    the API; psqlextra's PostgresPartitionedModel would make it Django's composite key, which
    the admin and every ``event.pk`` in the code cannot take); only the database knows the key
    ``(id, created_at)`` and the partitions."""
    model._partitioning_meta = PARTITIONING  # type: ignore[attr-defined]
    return cast(type[PostgresPartitionedModel], model)


class DayPartition(PostgresTimePartition):
    """One day of a table, created with its unique index."""

    def __init__(self, day: date, unique: tuple[str, str]) -> None:
        super().__init__(
            size=DAY,
            start_datetime=datetime(day.year, day.month, day.day),
            name_format=NAME_FORMAT,
        )
        self.unique = unique

    def create(
        self, model: Any, schema_editor: Any, comment: str | None = AUTO_PARTITIONED_COMMENT
    ) -> None:
        super().create(partitioned(model), schema_editor, comment=comment)
        table = schema_editor.create_partition_table_name(model, self.name())
        quote = schema_editor.quote_name
        schema_editor.execute(
            f"CREATE UNIQUE INDEX {quote(table + '_uniq')} ON {quote(table)} "
            f"({', '.join(quote(c) for c in self.unique)})"
        )


def day_of(name: str) -> date | None:
    """The day of a partition from its table name; None for a table not named by us."""
    try:
        return datetime.strptime(name.rsplit("_", 1)[-1], NAME_FORMAT).date()
    except ValueError:
        return None


def existing_partitions(model: type[models.Model]) -> dict[date, str]:
    """The day partitions of ``model``'s table that this module created: day -> table name."""
    with connection.cursor() as cursor:
        table = connection.introspection.get_partitioned_table(  # type: ignore[attr-defined]
            cursor, model._meta.db_table
        )
    found: dict[date, str] = {}
    for partition in table.partitions if table else []:
        day = day_of(partition.full_name)
        if day is not None and partition.comment == AUTO_PARTITIONED_COMMENT:
            found[day] = partition.full_name
    return found


def _lock_timeout(schema_editor: BaseDatabaseSchemaEditor) -> None:
    ms = int(settings.MISIS_RETENTION_LOCK_TIMEOUT * 1000)
    schema_editor.execute(f"SET LOCAL lock_timeout = {ms}")


def create_partitions(
    table: Partitioned,
    days: list[date],
    schema_editor: BaseDatabaseSchemaEditor | None = None,
) -> list[date]:
    """Create the partitions of ``days`` that do not exist yet; the days created.

    With ``schema_editor`` (a migration's), in its transaction; otherwise each in its own,
    with the lock timeout."""
    have = existing_partitions(table.model) if schema_editor is None else {}
    made = []
    for day in sorted(set(days) - set(have)):
        partition = DayPartition(day, table.unique)
        if schema_editor is not None:
            partition.create(table.model, schema_editor)
        else:
            with transaction.atomic(), connection.schema_editor() as editor:
                _lock_timeout(editor)
                _lock_like_a_publish(editor, table.model)
                partition.create(table.model, editor)
        made.append(day)
    return made


def ensure_partitions(now: datetime | None = None) -> int:
    """Today's partition and MISIS_PARTITIONS_AHEAD days after it, in both tables."""
    today = (now or timezone.now()).astimezone(UTC).date()
    days = [today + timedelta(days=i) for i in range(settings.MISIS_PARTITIONS_AHEAD + 1)]
    made = 0
    for table in TABLES:
        created = create_partitions(table, days)
        if created:
            logger.info("retention: %s partitions created for %s", table.model.__name__, created)
        made += len(created)
    return made


def _delete_snapshots(events: models.QuerySet[Event]) -> int:
    """Delete the snapshot files of ``events`` from storage, in batches; idempotent (a file
    already gone is no error). Logged per scenario."""
    storage = video_storage()
    per_scenario: dict[str, int] = {}
    rows = events.exclude(snapshot="").values_list("scenario_id", "snapshot")
    for scenario_id, name in rows.iterator(chunk_size=settings.MISIS_RETENTION_BATCH):
        try:
            storage.delete(name)
        except Exception:
            # Its rows stay until a sweep deletes the file: no snapshot is orphaned.
            logger.error("scenario %s: snapshot %s not deleted", scenario_id, name, exc_info=True)
            raise
        per_scenario[str(scenario_id)] = per_scenario.get(str(scenario_id), 0) + 1
    for scenario, count in per_scenario.items():
        logger.info("scenario %s: %s expired snapshots deleted", scenario, count)
    return sum(per_scenario.values())


def drop_expired_partitions(now: datetime | None = None) -> int:
    """Drop the partitions whose every row is older than MISIS_RETENTION; how many.

    A partition of day D holds rows written in [D, D + 1 day): it goes once D + 1 day is
    older than the retention. Events' snapshots are deleted before their partition."""
    cutoff = (now or timezone.now()) - settings.MISIS_RETENTION
    dropped = 0
    for table in TABLES:
        for day, name in sorted(existing_partitions(table.model).items()):
            end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
            if end > cutoff:
                continue
            if table is EVENTS:
                start = end - timedelta(days=1)
                _delete_snapshots(Event.objects.filter(created_at__gte=start, created_at__lt=end))
            with transaction.atomic(), connection.schema_editor() as editor:
                _lock_timeout(editor)
                _lock_like_a_publish(editor, table.model)
                partition = DayPartition(day, table.unique)
                partition.delete(partitioned(table.model), cast(PostgresSchemaEditor, editor))
            logger.info("retention: partition %s dropped", name)
            dropped += 1
    return dropped


def _lock_like_a_publish(editor: BaseDatabaseSchemaEditor, model: type[models.Model]) -> None:
    """Take the locks that creating or dropping a partition needs in the order a publish takes
    them: the scenarios table first (adding or dropping the partition's foreign key needs SHARE
    ROW EXCLUSIVE on it; a publish's UPDATE holds ROW EXCLUSIVE), then the partitioned table
    (a publish's INSERT). In the other order the DDL and a publish deadlock: each waits for a
    lock the other holds."""
    quote = editor.quote_name
    editor.execute(f"LOCK TABLE {quote(Scenario._meta.db_table)} IN SHARE ROW EXCLUSIVE MODE")
    editor.execute(f"LOCK TABLE {quote(model._meta.db_table)} IN ACCESS EXCLUSIVE MODE")


def _delete_batched(queryset: models.QuerySet[Any]) -> int:
    """Delete ``queryset``'s rows MISIS_RETENTION_BATCH at a time, each batch committed."""
    deleted = 0
    while True:
        batch = list(queryset.values_list("pk", flat=True)[: settings.MISIS_RETENTION_BATCH])
        if not batch:
            return deleted
        deleted += queryset.filter(pk__in=batch).delete()[0]


def scenario_retention(params: dict[str, Any]) -> timedelta:
    """How long a scenario's rows are kept: its ``params.retention`` when shorter."""
    own = params.get("retention")
    if not isinstance(own, str):
        return settings.MISIS_RETENTION
    return min(parse_duration(own), settings.MISIS_RETENTION)


def expire_scenarios(now: datetime | None = None) -> int:
    """Delete, in batches, the rows older than their scenario's shorter ``params.retention``."""
    now = now or timezone.now()
    deleted = 0
    shorter = Scenario.objects.filter(params__has_key="retention").values_list("pk", "params")
    for scenario_id, params in shorter.iterator():
        keep = scenario_retention(params)
        if keep >= settings.MISIS_RETENTION:
            continue
        cutoff = now - keep
        events = Event.objects.filter(scenario_id=scenario_id, created_at__lt=cutoff)
        snapshots = _delete_snapshots(events)
        gone = _delete_batched(events)
        gone += _delete_batched(
            Prediction.objects.filter(scenario_id=scenario_id, created_at__lt=cutoff)
        )
        if gone:
            logger.info(
                "scenario %s: %s rows older than %s deleted (%s snapshots)",
                scenario_id,
                gone,
                keep,
                snapshots,
            )
        deleted += gone
    return deleted


def sweep(now: datetime | None = None) -> dict[str, int]:
    """Everything retention does, in order; what it did."""
    return {
        "created": ensure_partitions(now),
        "dropped": drop_expired_partitions(now),
        "deleted": expire_scenarios(now),
    }
