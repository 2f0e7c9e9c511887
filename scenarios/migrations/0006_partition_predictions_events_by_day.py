"""Predictions and events become tables partitioned by day on ``created_at`` (retention:
scenarios/retention.py).

What it does, for each of the two tables, in the migration's one transaction:

1. renames the table and its indexes out of the way (``<table>_unpartitioned``);
2. creates the partitioned table with django-postgres-extra's schema editor (primary key
   ``(id, created_at)``: a partitioned table's keys must hold the partition key);
3. creates the day partitions the rows need, and today's and MISIS_PARTITIONS_AHEAD days after
   it, each with its unique index (``(scenario_id, frame_index)``, ``(scenario_id, seq)``);
4. copies the rows over (events keep their ``created_at``; predictions, which had none, count
   as written now, so they expire MISIS_RETENTION after this migration), moves the id sequence
   past the copied ids, and drops the old table.

The old global unique constraints go (a partitioned table cannot have them; see
scenarios/retention.py for what guarantees uniqueness now), and the foreign key to the scenario
loses its own index (each partition's unique index starts with scenario_id). The copy holds the
tables for its length: run it with the runners stopped. Not reversible.
"""

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import migrations, models
from django.db.models.functions import Now

import django.db.models.deletion


def _free_names(schema_editor, table, old):
    """Rename ``table`` to ``old``, and its indexes (the primary key's too) so that the new
    table can take their names."""
    quote = schema_editor.quote_name
    schema_editor.execute(f"ALTER TABLE {quote(table)} RENAME TO {quote(old)}")
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", [old])
        names = [row[0] for row in cursor.fetchall()]
    for i, name in enumerate(sorted(names)):
        schema_editor.execute(f"ALTER INDEX {quote(name)} RENAME TO {quote(f'{old}_{i}')}")


def partition(apps, schema_editor):
    from scenarios.retention import EVENTS, PREDICTIONS, Partitioned, create_partitions, partitioned

    quote = schema_editor.quote_name
    today = datetime.now(UTC).date()
    ahead = [today + timedelta(days=i) for i in range(settings.MISIS_PARTITIONS_AHEAD + 1)]
    for table in (PREDICTIONS, EVENTS):
        model = apps.get_model("scenarios", table.model.__name__)
        name = model._meta.db_table
        old = f"{name}_unpartitioned"
        _free_names(schema_editor, name, old)
        schema_editor.create_partitioned_model(partitioned(model))
        has_created_at = table is EVENTS
        with schema_editor.connection.cursor() as cursor:
            days = []
            if has_created_at:
                cursor.execute(
                    f"SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date FROM {quote(old)}"
                )
                days = [row[0] for row in cursor.fetchall()]
        create_partitions(Partitioned(model, table.unique), [*days, *ahead], schema_editor)
        columns = [f.column for f in model._meta.concrete_fields if f.column != "created_at"]
        listed = ", ".join(quote(c) for c in columns)
        source = "created_at" if has_created_at else "now()"
        schema_editor.execute(
            f"INSERT INTO {quote(name)} ({listed}, created_at) "
            f"SELECT {listed}, {source} FROM {quote(old)}"
        )
        if isinstance(model._meta.pk, models.BigAutoField):
            schema_editor.execute(
                f"SELECT setval(pg_get_serial_sequence(%s, 'id'), COALESCE(MAX(id), 0) + 1, false)"
                f" FROM {quote(name)}",
                [name],
            )
        schema_editor.execute(f"DROP TABLE {quote(old)}")


class Migration(migrations.Migration):
    dependencies = [("scenarios", "0005_scenario_list_indexes")]

    operations = [
        # The models as the ORM sees them afterwards.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveConstraint(
                    model_name="prediction", name="prediction_scenario_frame_uniq"
                ),
                migrations.RemoveConstraint(model_name="event", name="event_scenario_seq_uniq"),
                migrations.AddField(
                    model_name="prediction",
                    name="created_at",
                    field=models.DateTimeField(db_default=Now()),
                ),
                migrations.AlterField(
                    model_name="prediction",
                    name="scenario",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="predictions",
                        to="scenarios.scenario",
                    ),
                ),
                migrations.AlterField(
                    model_name="event",
                    name="scenario",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="events",
                        to="scenarios.scenario",
                    ),
                ),
            ]
        ),
        # The tables: partitioned, rows moved (see the docstring).
        migrations.RunPython(partition, elidable=False),
    ]
