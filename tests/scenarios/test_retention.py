"""Retention (scenarios/retention.py) on the real, partitioned tables: partitions ahead, expired
ones dropped while a scenario publishes, per-scenario retention, snapshots, the uniqueness of
(scenario, frame_index) and (scenario, seq) across partitions, MISIS_RETENTION's parsing."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.db import IntegrityError, connection, connections, transaction
from django.utils import timezone
from pytest_django import Settings

from misis.settings.retention import parse_duration
from scenarios import retention
from scenarios.event_writes import EventFacts, EventRow
from scenarios.models import Event, Prediction, Scenario, Status
from scenarios.retention import EVENTS, PREDICTIONS, create_partitions, existing_partitions
from scenarios.services import runner_writes
from sources.storage import video_storage
from tests.factories import make_event, make_prediction, make_scenario, prediction_row

pytestmark = pytest.mark.django_db


row = prediction_row


def event_row(seq: int) -> EventRow:
    facts = EventFacts(
        type="line_cross",
        zone=None,
        line="entry",
        direction="in",
        track_id=1,
        label="person",
        confidence=0.9,
        frame_index=seq,
        pts=0.0,
        box={"x1": 1.0, "y1": 2.0, "x2": 3.0, "y2": 4.0},
    )
    return EventRow(seq=seq, facts=facts, captured_at=timezone.now(), snapshot="")


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def table_of(model: Any, pk: Any) -> str:
    """The partition a row is stored in."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT tableoid::regclass::text FROM {model._meta.db_table} WHERE id = %s", [pk]
        )
        return str(cursor.fetchone()[0])


def tables() -> set[str]:
    """Every table, partitions included (Django's introspection leaves partitions out)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname FROM pg_class WHERE relname LIKE 'scenarios_%%'")
        return {name for (name,) in cursor.fetchall()}


def old_event(scenario: Scenario, seq: int, at: datetime, **fields: Any) -> Event:
    """An event written at ``at`` (created_at is auto_now_add: set it after, which moves the
    row to the partition of ``at``)."""
    event = make_event(scenario, seq, **fields)
    Event.objects.filter(pk=event.pk).update(created_at=at)
    return event


def snapshot(scenario: Scenario, seq: int) -> str:
    return video_storage().save(f"snapshots/{scenario.pk}/{seq}.jpg", ContentFile(b"\xff\xd8"))


# --- partitions ahead, and which column decides the partition -------------------------------


def test_partitions_are_created_ahead_with_their_unique_index(settings: Settings) -> None:
    settings.MISIS_PARTITIONS_AHEAD = 3
    later = timezone.now() + timedelta(days=40)
    made = retention.ensure_partitions(later)

    days = [later.date() + timedelta(days=i) for i in range(4)]
    assert made == 8  # 4 days, 2 tables
    for table in (PREDICTIONS, EVENTS):
        assert set(days) <= set(existing_partitions(table.model))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = %s AND indexname LIKE %s",
            [f"scenarios_prediction_{days[-1]:%Y%m%d}", "%_uniq"],
        )
        assert "UNIQUE INDEX" in cursor.fetchone()[0]
    assert retention.ensure_partitions(later) == 0  # idempotent


def test_the_partition_is_the_publish_time_not_the_sources_clock(user: User) -> None:
    # captured_at comes from the source (a camera's clock may be years off); created_at is the
    # database's: a frame "captured" in 1999 or 2100 lands in today's partition.
    scenario = make_scenario(Status.ACTIVE, owner=user)
    odd = [datetime(1999, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)]
    runner_writes.runner_publish(
        scenario_id=scenario.pk, epoch=1, rows=[row(0, odd[0]), row(1, odd[1])], next_frame=2
    )
    today = f"scenarios_prediction_{timezone.now():%Y%m%d}"
    assert {table_of(Prediction, p.pk) for p in Prediction.objects.all()} == {today}


def test_rows_each_side_of_midnight_land_in_their_day(user: User, settings: Settings) -> None:
    settings.MISIS_PARTITIONS_AHEAD = 1
    day = timezone.now().date() + timedelta(days=30)
    # The sweep before midnight has created the next day already.
    retention.ensure_partitions(midnight(day) - timedelta(seconds=30))
    scenario = make_scenario(Status.ACTIVE, owner=user)
    before = make_prediction(scenario, 0, created_at=midnight(day) - timedelta(microseconds=1))
    after = make_prediction(scenario, 1, created_at=midnight(day))
    assert table_of(Prediction, before.pk) == f"scenarios_prediction_{day - timedelta(1):%Y%m%d}"
    assert table_of(Prediction, after.pk) == f"scenarios_prediction_{day:%Y%m%d}"


def test_a_row_without_a_partition_is_refused_not_lost(user: User) -> None:
    # Only when the sweep has not run for MISIS_PARTITIONS_AHEAD days: the insert fails loudly.
    scenario = make_scenario(Status.ACTIVE, owner=user)
    with pytest.raises(IntegrityError, match="no partition"), transaction.atomic():
        make_prediction(scenario, 0, created_at=timezone.now() + timedelta(days=400))


# --- expired partitions ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # rows committed before the drop, as in life
def test_partitions_wholly_older_than_the_retention_are_dropped_with_their_snapshots(
    user: User, settings: Settings
) -> None:
    settings.MISIS_RETENTION = timedelta(days=7)
    now = timezone.now()
    old, edge = now.date() - timedelta(days=8), now.date() - timedelta(days=7)
    for table in (PREDICTIONS, EVENTS):
        create_partitions(table, [old, edge])
    scenario = make_scenario(Status.ACTIVE, owner=user)
    # Day "old" ended more than 7 days ago: dropped. Day "edge" still holds rows younger than
    # 7 days (it ends less than 7 days ago): kept, whole.
    make_prediction(scenario, 0, created_at=midnight(old) + timedelta(hours=12))
    make_prediction(scenario, 1, created_at=midnight(edge) + timedelta(hours=1))
    make_prediction(scenario, 2)
    gone_file, kept_file = snapshot(scenario, 1), snapshot(scenario, 2)
    old_event(scenario, 1, midnight(old) + timedelta(hours=1), snapshot=gone_file)
    make_event(scenario, 2, snapshot=kept_file)

    assert retention.drop_expired_partitions(now) >= 2  # (and any a test before left)

    assert f"scenarios_prediction_{old:%Y%m%d}" not in tables()
    assert f"scenarios_event_{old:%Y%m%d}" not in tables()
    assert f"scenarios_prediction_{edge:%Y%m%d}" in tables()
    assert sorted(Prediction.objects.values_list("frame_index", flat=True)) == [1, 2]
    assert list(Event.objects.values_list("seq", flat=True)) == [2]
    assert not video_storage().exists(gone_file)
    assert video_storage().exists(kept_file)
    assert retention.drop_expired_partitions(now) == 0  # idempotent


@pytest.mark.django_db(transaction=True)
def test_snapshots_already_gone_do_not_stop_the_drop(user: User, settings: Settings) -> None:
    # A sweep that died after deleting the files and before the drop runs again cleanly.
    settings.MISIS_RETENTION = timedelta(days=1)
    old = timezone.now().date() - timedelta(days=3)
    create_partitions(EVENTS, [old])
    scenario = make_scenario(Status.ACTIVE, owner=user)
    old_event(scenario, 1, midnight(old), snapshot=f"snapshots/{scenario.pk}/1.jpg")
    assert retention.drop_expired_partitions() >= 1
    assert f"scenarios_event_{old:%Y%m%d}" not in tables()
    assert not Event.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_dropping_old_partitions_while_a_scenario_publishes_loses_nothing(
    user: User, settings: Settings
) -> None:
    """A real thread publishes through runner_publish (the runner's write) while the sweep
    creates and drops partitions with rows in them, over and over: no publish fails, every
    published frame is there."""
    settings.MISIS_RETENTION = timedelta(days=2)
    scenario = make_scenario(Status.ACTIVE, owner=user)
    old_days = [timezone.now().date() - timedelta(days=10 + i) for i in range(12)]
    stop = threading.Event()
    errors: list[BaseException] = []
    published = [0]

    def publish() -> None:
        try:
            frame = 0
            while not stop.is_set() or frame < 200:
                batch = [row(frame + i) for i in range(10)]
                runner_writes.runner_publish(
                    scenario_id=scenario.pk, epoch=1, rows=batch, next_frame=frame + 10
                )
                frame += 10
                published[0] = frame
        except BaseException as exc:  # the test's verdict
            errors.append(exc)
        finally:
            connections.close_all()

    writer = threading.Thread(target=publish)
    writer.start()
    dropped = 0
    try:
        for day in old_days:
            for table in (PREDICTIONS, EVENTS):
                create_partitions(table, [day])
            Prediction.objects.create(
                scenario=scenario,
                frame_index=10**9 + day.toordinal(),  # old rows of a long-gone run
                epoch=1,
                pts=0,
                captured_at=midnight(day),
                width=1,
                height=1,
                inference_ms=0,
                created_at=midnight(day) + timedelta(hours=1),
            )
            dropped += retention.sweep()["dropped"]
    finally:
        stop.set()
        writer.join(timeout=60)

    assert not errors, errors
    assert dropped == 2 * len(old_days)
    frames = list(
        Prediction.objects.filter(scenario=scenario)
        .order_by("frame_index")
        .values_list("frame_index", flat=True)
    )
    assert frames == list(range(published[0]))
    scenario.refresh_from_db()
    assert scenario.next_frame == published[0] >= 200


# --- per-scenario retention -----------------------------------------------------------------


def test_a_shorter_params_retention_deletes_that_scenarios_old_rows_in_batches(
    user: User, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings.MISIS_RETENTION_BATCH = 3
    short = make_scenario(Status.ACTIVE, owner=user, params={"retention": "1h"})
    other = make_scenario(Status.ACTIVE, owner=user)
    two_hours_ago = timezone.now() - timedelta(hours=2)
    # Yesterday's partition in the first two hours of a UTC day (the fixture makes today's on).
    retention.ensure_partitions(two_hours_ago)
    for scenario in (short, other):
        for i in range(7):
            make_prediction(scenario, i, created_at=two_hours_ago)
        make_prediction(scenario, 7)
        old_event(scenario, 1, two_hours_ago, snapshot=snapshot(scenario, 1))
        make_event(scenario, 2, snapshot=snapshot(scenario, 2))

    with caplog.at_level(logging.INFO, logger="scenarios.retention"):
        assert retention.expire_scenarios() == 8

    assert list(short.predictions.values_list("frame_index", flat=True)) == [7]
    assert list(short.events.values_list("seq", flat=True)) == [2]
    assert not video_storage().exists(f"snapshots/{short.pk}/1.jpg")
    assert video_storage().exists(f"snapshots/{short.pk}/2.jpg")
    assert other.predictions.count() == 8 and other.events.count() == 2
    assert video_storage().exists(f"snapshots/{other.pk}/1.jpg")
    assert any(str(short.pk) in r.getMessage() for r in caplog.records)
    assert retention.expire_scenarios() == 0


@pytest.mark.parametrize(
    "value",
    ["forever", "7", "0h", "59m", "030d", "1.5d", " 2d", "2d\n", "1000000d", 5, None, ["1d"]],
)
def test_params_retention_is_a_duration_of_an_hour_or_more(api: Any, value: Any) -> None:
    resp = api.post(
        "/scenario/",
        {"source": "short.mp4", "params": {"retention": value}},
        format="json",
    )
    assert resp.status_code == 400, resp.content
    assert "retention" in resp.json()["params"]
    assert not Scenario.objects.exists()


@pytest.mark.parametrize(
    ("value", "kept"),
    [("60m", timedelta(hours=1)), ("36h", timedelta(hours=36)), ("30d", timedelta(days=7))],
)
def test_params_retention_shortens_the_servers(api: Any, value: str, kept: timedelta) -> None:
    resp = api.post(
        "/scenario/", {"source": "short.mp4", "params": {"retention": value}}, format="json"
    )
    assert resp.status_code == 201, resp.content
    # Longer than MISIS_RETENTION (7d): the server's retention holds.
    assert retention.scenario_retention(resp.json()["params"]) == kept


# --- uniqueness across partitions -----------------------------------------------------------


def test_a_frame_published_in_an_older_partition_cannot_be_published_again(user: User) -> None:
    """A runner restarted the next day (new epoch) that re-sends a frame already published
    yesterday: the per-partition index would not see it, the high-water mark refuses it."""
    yesterday = timezone.now().date() - timedelta(days=1)
    create_partitions(PREDICTIONS, [yesterday])
    create_partitions(EVENTS, [yesterday])
    scenario = make_scenario(Status.ACTIVE, owner=user)
    for i in range(10):
        make_prediction(scenario, i, created_at=midnight(yesterday))
    old_event(scenario, 1, midnight(yesterday))
    Scenario.objects.filter(pk=scenario.pk).update(next_frame=10, events_total=1, epoch=2)

    with pytest.raises(IntegrityError, match="frame 5 is below next_frame 10"):
        runner_writes.runner_publish(
            scenario_id=scenario.pk, epoch=2, rows=[row(5), row(10)], next_frame=11
        )
    with pytest.raises(IntegrityError, match="event 1 is not above events_total 1"):
        runner_writes.runner_publish(
            scenario_id=scenario.pk, epoch=2, rows=[row(10)], next_frame=11, events=[event_row(1)]
        )
    assert Prediction.objects.count() == 10 and Event.objects.count() == 1
    scenario.refresh_from_db()
    assert (scenario.next_frame, scenario.events_total) == (10, 1)

    runner_writes.runner_publish(
        scenario_id=scenario.pk, epoch=2, rows=[row(10)], next_frame=11, events=[event_row(2)]
    )
    assert Prediction.objects.filter(frame_index=10).count() == 1


def test_each_partition_refuses_a_duplicate_pair(user: User) -> None:
    scenario = make_scenario(Status.ACTIVE, owner=user)
    make_prediction(scenario, 3)
    make_event(scenario, 1)
    with pytest.raises(IntegrityError, match="_uniq"), transaction.atomic():
        make_prediction(scenario, 3)
    with pytest.raises(IntegrityError, match="_uniq"), transaction.atomic():
        make_event(scenario, 1)


# --- cascade, the task, the setting ---------------------------------------------------------


def test_deleting_a_scenario_deletes_its_rows_in_every_partition(user: User) -> None:
    yesterday = timezone.now().date() - timedelta(days=1)
    create_partitions(PREDICTIONS, [yesterday])
    scenario = make_scenario(Status.INACTIVE, owner=user)
    kept = make_scenario(Status.INACTIVE, owner=user)
    make_prediction(scenario, 0, created_at=midnight(yesterday))
    make_prediction(scenario, 1)
    make_event(scenario, 1)
    make_prediction(kept, 0)
    scenario.delete()
    assert list(Prediction.objects.values_list("scenario_id", flat=True)) == [kept.pk]
    assert not Event.objects.exists()


def test_the_sweep_is_a_beat_task_on_the_orchestrator_queue(settings: Settings) -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["retention"]
    assert entry["task"] == "scenarios.retention"
    from misis.celery import app

    assert app.amqp.router.route({}, "scenarios.retention")["queue"].name == "orchestrator"
    from scenarios.tasks import retention as task

    done = task.apply().get()
    assert set(done) == {"created", "dropped", "deleted"} and done["dropped"] == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [("7d", timedelta(days=7)), ("12h", timedelta(hours=12)), ("90m", timedelta(minutes=90))],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "7", "d", "0d", "-1d", "7w", "1.5d", "7 d", "1000000d"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "message"),
    [("a week", "MISIS_RETENTION: 'a week' is not a duration"), ("30m", "shorter than 1h")],
)
def test_a_bad_misis_retention_stops_startup(value: str, message: str) -> None:
    env = {**os.environ, "MISIS_RETENTION": value, "DJANGO_SETTINGS_MODULE": "misis.settings.test"}
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr and message in done.stderr


# --- the migration --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_a_deployments_rows() -> None:
    """A database at 0004 with predictions and events (from several days) is migrated: every
    row is kept, in the partition of its day, and new ids follow the copied ones."""
    base = connection.settings_dict
    scratch = f"{base['NAME']}_convert"
    url = f"postgres://{base['USER']}@{base['HOST']}:{base['PORT']}/{scratch}"
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "misis.settings.test"}

    def manage(*args: str) -> None:
        subprocess.run([sys.executable, "manage.py", *args, "-v0"], env=env, check=True)

    def sql(statement: str) -> list[tuple[Any, ...]]:
        with connection.cursor() as cursor:
            cursor.execute(statement)
            return list(cursor.fetchall()) if cursor.description else []

    def scratch_sql(statement: str) -> str:
        done = subprocess.run(
            ["psql", url, "-v", "ON_ERROR_STOP=1", "-Atqc", statement],
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    sql(f"DROP DATABASE IF EXISTS {scratch}")
    sql(f"CREATE DATABASE {scratch}")
    try:
        manage("migrate", "scenarios", "0004")
        scratch_sql(
            "INSERT INTO auth_user (password, last_login, is_superuser, username, first_name,"
            " last_name, email, is_staff, is_active, date_joined)"
            " VALUES ('x', now(), false, 'u', '', '', '', false, true, now());"
            "INSERT INTO scenarios_scenario (id, owner_id, name, source, params, status,"
            " created_at, updated_at, epoch, frames_processed, frames_dropped, next_frame, fps,"
            " restarts, failed_restarts, reconnects, counts, events_total)"
            " SELECT gen_random_uuid(), id, '', 'x.mp4', '{}', 'inactive', now(), now(), 1, 0,"
            " 0, 500, 0, 0, 0, 0, '{}', 3 FROM auth_user;"
            "INSERT INTO scenarios_prediction (scenario_id, frame_index, epoch, pts, captured_at,"
            " width, height, inference_ms, boxes) SELECT s.id, g, 1, g / 25.0, now(), 64, 48,"
            " 3, '[]' FROM scenarios_scenario s, generate_series(0, 499) g;"
            "INSERT INTO scenarios_event (id, scenario_id, seq, epoch, type, track_id, label,"
            " confidence, frame_index, pts, captured_at, box, snapshot, webhook_attempts,"
            " created_at) SELECT gen_random_uuid(), s.id, g, 1, 'line_cross', 1, 'person', 0.9,"
            " g, 0, now(), '{}', '', 0, now() - g * interval '1 day'"
            " FROM scenarios_scenario s, generate_series(1, 3) g"
        )
        manage("migrate")
        assert scratch_sql("SELECT count(*), max(frame_index) FROM scenarios_prediction") == (
            "500|499"
        )
        parts = scratch_sql(
            "SELECT count(DISTINCT tableoid) || '|' || count(*) FROM scenarios_event"
        )
        assert parts == "3|3"  # three days, three partitions
        assert scratch_sql("SELECT relkind FROM pg_class WHERE relname = 'scenarios_event'") == "p"
        assert "unpartitioned" not in scratch_sql("SELECT string_agg(relname, ',') FROM pg_class")
        new_id = scratch_sql(
            "INSERT INTO scenarios_prediction (scenario_id, frame_index, epoch, pts, captured_at,"
            " width, height, inference_ms, boxes) SELECT id, 500, 1, 0, now(), 1, 1, 0, '[]'"
            " FROM scenarios_scenario RETURNING id"
        )
        assert new_id == "501"
    finally:
        connections.close_all()
        sql(f"DROP DATABASE IF EXISTS {scratch} WITH (FORCE)")


@pytest.mark.parametrize(
    "value",
    [
        "1h",
        "60m",
        "59m",
        "0h",
        "1d",
        "999999d",
        "1000000d",
        "100m",
        "999999m",
        "030d",
        "1.5d",
        "1d\n",
    ],
)
def test_the_schemas_pattern_and_the_check_agree(value: str) -> None:
    """params.py checks retention with the settings' parser and publishes a regular expression
    in the JSON schema: the two accept the same durations."""
    from scenarios.params import _RULES, RETENTION_PATTERN

    check, _ = _RULES["retention"]
    assert check(value) == (re.fullmatch(RETENTION_PATTERN, value) is not None)
