"""GET /scenario/ (filters, cursor paging, indexes) and DELETE /scenario/<id>/ (fence, cascade,
Redis and storage cleanup), on the real PostgreSQL, Redis and storage."""

from __future__ import annotations

import inspect
import itertools
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.core import signing
from django.core.files.base import ContentFile
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from pytest_django import DjangoCaptureOnCommitCallbacks, Settings

from misis import keys
from misis.lease import Lease, LeaseLost
from misis.redis_client import get_redis
from scenarios import selectors, webhooks
from scenarios.control import stop_requested
from scenarios.models import Event, OutboxMessage, Prediction, Scenario, Status
from scenarios.preview import PreviewWriter, mark_watched
from scenarios.services import commands, runner_writes
from scenarios.snapshots import snapshot_dir, snapshot_name
from scenarios.tasks import purge_scenario
from sources.storage import video_storage
from testbed.scenario_rows import insert_scenarios
from tests.conftest import client_for
from tests.factories import make_event, make_prediction, make_scenario, prediction_row

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_quota(settings: Settings) -> None:
    settings.MISIS_QUOTA_ACTIVE_SCENARIOS = 0


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks) -> Any:
    """Runs what a commit would (each test is one transaction that is rolled back)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def scenario_keys_in_redis(scenario_id: object) -> list[str]:
    """Every key of the Redis database that names the scenario, whatever its prefix."""
    return sorted(k.decode() for k in get_redis().scan_iter(match=f"*{scenario_id}*", count=1000))


def row(i: int) -> runner_writes.PredictionRow:
    return prediction_row(i, width=64, height=48)


# --- DELETE ------------------------------------------------------------------------------------


def store_snapshot(scenario: Scenario, seq: int) -> str:
    return video_storage().save(snapshot_name(scenario.pk, seq), ContentFile(b"\xff\xd8 jpeg"))


def test_delete_removes_the_scenario_with_its_rows_and_snapshots(
    api: Any, user: User, on_commit: Any
) -> None:
    s = make_scenario(Status.INACTIVE, owner=user)
    for i in range(3):
        make_prediction(s, i)
    make_event(s, 1, snapshot=store_snapshot(s, 1))
    store_snapshot(s, 2)  # a runner died between storing it and publishing its event
    folder = Path(video_storage().path(snapshot_dir(s.pk)))
    assert len(list(folder.iterdir())) == 2
    kept = make_scenario(Status.INACTIVE, owner=user)
    make_prediction(kept, 0)
    make_event(kept, 1, snapshot=store_snapshot(kept, 1))

    with on_commit():
        answer = api.delete(f"/scenario/{s.pk}/")

    assert answer.status_code == 204, answer.content
    assert answer.content == b""
    assert not Scenario.objects.filter(pk=s.pk).exists()
    assert not Prediction.objects.filter(scenario_id=s.pk).exists()
    assert not Event.objects.filter(scenario_id=s.pk).exists()
    assert not OutboxMessage.objects.filter(scenario_id=s.pk).exists()
    assert not folder.exists()
    # Another scenario of the same owner keeps everything.
    assert Prediction.objects.filter(scenario=kept).count() == 1
    assert video_storage().exists(snapshot_name(kept.pk, 1))
    for method in ("get", "delete"):
        assert getattr(api, method)(f"/scenario/{s.pk}/").status_code == 404
    assert api.get(f"/prediction/{s.pk}/").status_code == 404
    assert api.get(f"/event/{s.pk}/").status_code == 404


def test_delete_of_another_users_scenario_is_404_and_deletes_nothing(
    other_api: Any, user: User
) -> None:
    s = make_scenario(Status.ACTIVE, owner=user)
    make_prediction(s, 0)
    make_event(s, 1)
    lease = Lease.acquire(s.pk, s.epoch)
    assert lease is not None

    for target in (s.pk, uuid.uuid4(), "not-a-uuid", "../../etc"):
        assert other_api.delete(f"/scenario/{target}/").status_code == 404

    assert Scenario.objects.filter(pk=s.pk, status=Status.ACTIVE).exists()
    assert Prediction.objects.filter(scenario=s).count() == 1
    assert Event.objects.filter(scenario=s).count() == 1
    assert not stop_requested(s.pk, s.epoch)
    lease.renew()  # the runner's lease is untouched


def test_staff_may_delete_any_scenario(staff_api: Any, user: User) -> None:
    s = make_scenario(Status.INACTIVE, owner=user)
    assert staff_api.delete(f"/scenario/{s.pk}/").status_code == 204
    assert not Scenario.objects.filter(pk=s.pk).exists()


def test_delete_without_a_token_is_401(client: Any, user: User) -> None:
    s = make_scenario(Status.INACTIVE, owner=user)
    assert client.delete(f"/scenario/{s.pk}/").status_code == 401
    assert Scenario.objects.filter(pk=s.pk).exists()


def test_delete_while_running_fences_the_runner_out(api: Any, user: User, on_commit: Any) -> None:
    """A runner that still holds the old epoch's lease publishes nothing after the delete,
    cannot bring the preview back, and finds its lease gone; then nothing of the scenario is
    left in Redis, and the stop flag it was shown expires on its own."""
    s = make_scenario(Status.ACTIVE, owner=user, runner="host:1")
    lease = Lease.acquire(s.pk, s.epoch)
    assert lease is not None
    runner_writes.runner_publish(scenario_id=s.pk, epoch=s.epoch, rows=[row(0)], next_frame=1)
    mark_watched(s.pk)  # someone watches: the runner encodes previews
    preview = PreviewWriter(str(s.pk))
    image = np.zeros((48, 64, 3), dtype=np.uint8)
    preview.offer(image, [])
    assert get_redis().exists(keys.preview(s.pk))

    with on_commit() as callbacks:
        assert api.delete(f"/scenario/{s.pk}/").status_code == 204
    assert len(callbacks) == 1

    # The runner notices within a frame: its stop flag (checked every 50 ms) is up ...
    assert stop_requested(s.pk, s.epoch)
    # ... and every way it has to publish is closed.
    with pytest.raises(LeaseLost):
        lease.renew()
    with pytest.raises(LeaseLost):
        runner_writes.runner_publish(scenario_id=s.pk, epoch=s.epoch, rows=[row(1)], next_frame=2)
    preview.last = 0.0
    preview.offer(image, [])
    assert not Prediction.objects.filter(scenario_id=s.pk).exists()
    assert not Scenario.objects.filter(pk=s.pk).exists()
    # Only the stop flag is left, and only for the lease's lifetime.
    assert scenario_keys_in_redis(s.pk) == [keys.stop(s.pk)]
    ttl_ms = get_redis().pttl(keys.stop(s.pk))
    assert 0 < ttl_ms <= 6000
    # The purge task (sent with a countdown) takes it, and anything a late runner wrote.
    assert purge_scenario(str(s.pk)) is True
    assert scenario_keys_in_redis(s.pk) == []


def test_a_runner_write_that_skipped_the_fence_fails_on_the_foreign_key(user: User) -> None:
    s = make_scenario(Status.ACTIVE, owner=user)
    pk = s.pk
    commands.delete_scenario(s)
    with pytest.raises(IntegrityError), transaction.atomic():
        Prediction.objects.create(
            scenario_id=pk,
            frame_index=0,
            epoch=1,
            pts=0.0,
            captured_at=timezone.now(),
            width=1,
            height=1,
            inference_ms=1.0,
        )
        # Django's foreign keys are DEFERRABLE INITIALLY DEFERRED: checked at the commit.
        connection.check_constraints()
    assert not Prediction.objects.filter(scenario_id=pk).exists()


@pytest.mark.django_db(transaction=True)
def test_a_publish_in_flight_lands_before_the_delete_and_goes_with_it(user: User) -> None:
    """A runner's publish that holds the row lock when the delete comes: the delete waits for
    it, then removes what it wrote; the runner's next publish is refused."""
    s = make_scenario(Status.ACTIVE, owner=user)
    locked, release = threading.Event(), threading.Event()

    def publish_slowly() -> None:
        try:
            with transaction.atomic():
                runner_writes._lock_fenced(s.pk, s.epoch)
                locked.set()
                release.wait(10)
                Prediction.objects.bulk_create(
                    [Prediction(scenario_id=s.pk, epoch=s.epoch, **vars(row(i))) for i in range(5)]
                )
        finally:
            connection.close()

    runner = threading.Thread(target=publish_slowly)
    runner.start()
    assert locked.wait(10)

    def delete() -> None:
        commands.delete_scenario(s)
        connection.close()

    deleter = threading.Thread(target=delete)
    deleter.start()
    deleter.join(0.5)
    assert deleter.is_alive()  # waiting for the publish's row lock
    release.set()
    runner.join(10)
    deleter.join(10)
    assert not deleter.is_alive()
    assert not Prediction.objects.filter(scenario_id=s.pk).exists()
    assert not Scenario.objects.filter(pk=s.pk).exists()
    with pytest.raises(LeaseLost):
        runner_writes.runner_publish(scenario_id=s.pk, epoch=s.epoch, rows=[row(9)], next_frame=10)


def test_delete_of_a_scenario_deleted_meanwhile_is_404(api: Any, user: User) -> None:
    s = make_scenario(Status.INACTIVE, owner=user)
    stale = Scenario.objects.get(pk=s.pk)
    commands.delete_scenario(s)
    with pytest.raises(commands.ScenarioGone):
        commands.delete_scenario(stale)


def test_purge_leaves_an_existing_scenario_alone(user: User) -> None:
    s = make_scenario(Status.ACTIVE, owner=user)
    lease = Lease.acquire(s.pk, s.epoch)
    assert lease is not None
    name = store_snapshot(s, 1)
    assert purge_scenario(str(s.pk)) is False
    lease.renew()
    assert video_storage().exists(name)


def test_every_per_scenario_key_is_removed_by_a_delete() -> None:
    """A key function of misis/keys.py that takes a scenario id is one a delete must remove."""
    per_scenario = {
        name
        for name, fn in inspect.getmembers(keys, inspect.isfunction)
        if fn.__module__ == keys.__name__
        and list(inspect.signature(fn).parameters) == ["scenario_id"]
    } - {"scenario_keys"}
    assert per_scenario == {fn.__name__ for fn in keys.SCENARIO_KEY_FUNCTIONS}
    sid = uuid.uuid4()
    assert sorted(keys.scenario_keys(sid)) == sorted(
        getattr(keys, name)(sid) for name in per_scenario
    )


def test_a_pending_webhook_of_a_deleted_scenario_is_dropped(user: User) -> None:
    s = make_scenario(
        Status.ACTIVE,
        owner=user,
        params={"webhook": {"url": "https://hooks.example/x", "secret": "s" * 16}},
    )
    event = make_event(s, 1, webhook="pending", webhook_next_at=timezone.now())
    commands.delete_scenario(s)
    assert webhooks.deliver(str(event.pk)) is None
    assert webhooks.webhook_relay() == 0


def test_an_outbox_message_of_a_deleted_scenario_is_dropped(user: User) -> None:
    from scenarios.services import outbox

    s = make_scenario(Status.INIT_STARTUP, owner=user)
    message = OutboxMessage.objects.get(scenario=s)
    OutboxMessage.objects.filter(pk=message.pk).update(dispatched_at=None)
    commands.delete_scenario(s)
    assert outbox.outbox_dispatch(message_id=message.pk) is False
    assert outbox.outbox_relay() == 0


# --- GET /scenario/ ----------------------------------------------------------------------------


def make_many(owner: Any, n: int, *, name: str = "cam", status: str = Status.INACTIVE) -> list[Any]:
    """``n`` scenarios of ``owner``, one second apart (the oldest first), written in bulk."""
    made = Scenario.objects.bulk_create(
        [
            Scenario(owner=owner, source="short.mp4", name=f"{name} {i}", status=status)
            for i in range(n)
        ]
    )
    pks = [s.pk for s in made]
    spread_created_at(pks)
    return pks


def spread_created_at(pks: list[Any]) -> None:
    """``created_at`` one second apart in the order of ``pks`` (auto_now_add sets them all to
    now), after those of earlier calls."""
    with connection.cursor() as cur:
        cur.execute(
            """UPDATE scenarios_scenario s
               SET created_at = %s + v.n * interval '1 second'
               FROM unnest(%s::uuid[]) WITH ORDINALITY AS v(id, n) WHERE s.id = v.id""",
            [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=next(_CLOCK)), pks],
        )


_CLOCK = itertools.count(0, 100_000)


def ids(answer: Any) -> list[str]:
    return [r["id"] for r in answer.json()["results"]]


def walk(api: Any, url: str) -> list[str]:
    """Follow ``next`` from ``url`` to the end; every id seen."""
    seen: list[str] = []
    while url:
        answer = api.get(url)
        assert answer.status_code == 200, answer.content
        seen += ids(answer)
        url = answer.json()["next"]
    return seen


def test_list_is_newest_first_and_paged_by_cursor(api: Any, user: User, other_user: User) -> None:
    mine = make_many(user, 7)
    make_many(other_user, 5)
    # Three rows with the same created_at: the id breaks the tie, none is lost or repeated.
    same = make_many(user, 3, name="tie")
    Scenario.objects.filter(pk__in=same).update(created_at=datetime(2026, 6, 1, tzinfo=UTC))

    first = api.get("/scenario/?limit=4")
    assert first.status_code == 200
    body = first.json()
    assert len(body["results"]) == 4
    assert body["results"][0].keys() == api.get(f"/scenario/{mine[0]}/").json().keys()
    assert "analytics_state" not in body["results"][0]
    everything = walk(api, "/scenario/?limit=4")
    expected = [str(pk) for pk in sorted(same, reverse=True)] + [str(pk) for pk in mine[::-1]]
    assert everything == expected
    assert api.get("/scenario/").json()["next"] is None


def test_list_default_and_largest_page(api: Any, user: User) -> None:
    make_many(user, 501)
    default = api.get("/scenario/").json()
    assert len(default["results"]) == 50
    assert parse_qs(urlsplit(default["next"]).query)["cursor"]
    assert len(api.get("/scenario/?limit=500").json()["results"]) == 500
    assert len(walk(api, "/scenario/?limit=500")) == 501


@pytest.mark.parametrize("limit", ["0", "501", "-1", "abc", "1.5", "9" * 30])
def test_list_refuses_a_bad_limit(api: Any, limit: str) -> None:
    answer = api.get("/scenario/", {"limit": limit})
    assert answer.status_code == 400
    assert "limit" in answer.json()


@pytest.mark.parametrize("name", ["limit", "name", "cursor"])
def test_list_refuses_a_parameter_given_twice(api: Any, name: str) -> None:
    # Which of the two would count is the server's guess: refused, naming it.
    answer = api.get(f"/scenario/?{name}=5&{name}=false")
    assert answer.status_code == 400
    assert answer.json() == {name: ["given more than once; give it once"]}


def test_predictions_and_events_refuse_a_parameter_given_twice(api: Any, user: User) -> None:
    s = make_scenario(Status.INACTIVE, owner=user)
    for path in (f"/prediction/{s.pk}/", f"/event/{s.pk}/"):
        for name in ("limit", "after"):
            answer = api.get(f"{path}?{name}=5&{name}=7")
            assert answer.status_code == 400, (path, name)
            assert answer.json() == {name: ["given more than once; give it once"]}


def test_list_filters_by_status_repeatable(api: Any, user: User, other_user: User) -> None:
    active = make_many(user, 3, status=Status.ACTIVE)
    stopping = make_many(user, 2, status=Status.INIT_SHUTDOWN)
    make_many(user, 4, status=Status.INACTIVE)
    make_many(other_user, 3, status=Status.ACTIVE)

    assert set(walk(api, "/scenario/?status=active&limit=2")) == {str(p) for p in active}
    both = walk(api, "/scenario/?status=active&status=init_shutdown&limit=2")
    assert sorted(both) == sorted(str(p) for p in active + stopping)


@pytest.mark.parametrize("status", ["running", "", "ACTIVE", "active;drop"])
def test_list_refuses_an_unknown_status(api: Any, status: str) -> None:
    answer = api.get("/scenario/", {"status": ["active", status]})
    assert answer.status_code == 400
    assert "status" in answer.json()


def test_list_filters_by_name_substring_ignoring_case(
    api: Any, user: User, other_user: User
) -> None:
    lobby = make_many(user, 3, name="Lobby door")
    make_many(user, 3, name="parking")
    make_many(other_user, 3, name="lobby")
    found = walk(api, "/scenario/?name=BBY%20D&limit=2")
    assert sorted(found) == sorted(str(p) for p in lobby)
    assert ids(api.get("/scenario/", {"name": "%"})) == []  # LIKE wildcards are literal
    assert ids(api.get("/scenario/", {"name": "_"})) == []


@pytest.mark.parametrize("name", ["a\x00b", "x" * 201])
def test_list_refuses_a_name_it_cannot_look_for(api: Any, name: str) -> None:
    answer = api.get("/scenario/", {"name": name})
    assert answer.status_code == 400
    assert "name" in answer.json()


def test_next_keeps_the_filters(api: Any, user: User) -> None:
    make_many(user, 5, name="door", status=Status.ACTIVE)
    nxt = api.get("/scenario/?status=active&name=door&limit=2").json()["next"]
    query = parse_qs(urlsplit(nxt).query)
    assert query["status"] == ["active"]
    assert query["name"] == ["door"]
    assert query["limit"] == ["2"]


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "W10:1abc:def",
        signing.dumps(["2026-01-01T00:00:00+00:00", str(uuid.uuid4())], salt="other.salt"),
        signing.dumps(["not a date", str(uuid.uuid4())], salt="scenarios.list.cursor"),
        signing.dumps(["2026-01-01T00:00:00", str(uuid.uuid4())], salt="scenarios.list.cursor"),
        signing.dumps(["2026-01-01T00:00:00+00:00", "x"], salt="scenarios.list.cursor"),
        signing.dumps({"a": 1}, salt="scenarios.list.cursor"),
        signing.dumps([1, 2, 3], salt="scenarios.list.cursor"),
    ],
)
def test_list_refuses_a_cursor_it_did_not_make(api: Any, user: User, cursor: str) -> None:
    make_many(user, 3)
    answer = api.get("/scenario/", {"cursor": cursor})
    assert answer.status_code == 400
    assert "cursor" in answer.json()


def test_a_tampered_cursor_is_refused(api: Any, user: User) -> None:
    make_many(user, 3)
    cursor = parse_qs(urlsplit(api.get("/scenario/?limit=1").json()["next"]).query)["cursor"][0]
    payload, sig = cursor.split(":", 1)
    tampered = payload[:-1] + ("A" if payload[-1] != "A" else "B") + ":" + sig
    assert api.get("/scenario/", {"cursor": tampered}).status_code == 400


def test_list_never_shows_another_users_scenarios(
    api: Any, user: User, other_user: User, staff_user: User
) -> None:
    mine = {str(p) for p in make_many(user, 4, name="door", status=Status.ACTIVE)}
    theirs = make_many(other_user, 4, name="door", status=Status.ACTIVE)
    # Bob's newest row as a position: a cursor from his own list, used by Alice.
    bob_page = client_for(other_user).get("/scenario/?limit=1").json()
    bob_cursor = parse_qs(urlsplit(bob_page["next"]).query)["cursor"][0]
    for url in (
        "/scenario/",
        "/scenario/?status=active",
        "/scenario/?name=door",
        "/scenario/?status=active&name=door&limit=1",
        f"/scenario/?cursor={bob_cursor}",
    ):
        seen = set(walk(api, url))
        assert seen <= mine, url
    assert set(walk(api, "/scenario/")) == mine
    every = set(walk(client_for(staff_user), "/scenario/?limit=3"))
    assert every == mine | {str(p) for p in theirs}


def test_the_schema_states_the_list_parameters_and_page(client: Any) -> None:
    schema = client.get("/api/schema/?format=json").json()
    operation = schema["paths"]["/scenario/"]["get"]
    params = {p["name"]: p for p in operation["parameters"] if p["in"] == "query"}
    assert set(params) == {"limit", "cursor", "status", "name"}
    assert params["limit"]["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": selectors.SCENARIO_PAGE_MAX,
        "default": selectors.SCENARIO_PAGE,
    }
    assert set(params["status"]["schema"]["items"]["enum"]) == set(Status.values)
    assert params["status"]["explode"] is True
    page = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    body = schema["components"]["schemas"][page.rsplit("/", 1)[-1]]
    assert set(body["properties"]) == {"next", "results"}
    assert body["properties"]["results"]["items"]["$ref"].endswith("/Scenario")
    assert "204" in schema["paths"]["/scenario/{scenario_id}/"]["delete"]["responses"]


def test_list_without_a_token_is_401(client: Any) -> None:
    assert client.get("/scenario/").status_code == 401


# --- the plan: each list query is served by its index ------------------------------------------


def plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes += plan_nodes(child)
    return nodes


@pytest.fixture
def crowded(user: User, other_user: User, staff_user: User) -> dict[str, Any]:
    """40,000 scenarios of 40 owners (Alice has 1,000), 1% in each status but inactive."""
    from django.contrib.auth import get_user_model

    owners = [user, other_user] + [
        get_user_model().objects.create_user(username=f"u{i}") for i in range(38)
    ]
    insert_scenarios(owner_ids=[o.pk for o in owners], count=40_000, door_every=997)
    return {"user": user, "staff": staff_user}


# Each list query and the index that must serve it.
# Each list query, the indexes that may serve it, and the most rows any step of its plan may
# touch. A page is 51 rows; Alice has 1,000 of the 40,000; the rarest filters match 400 rows
# (a status) or 41 (a name). A common status is served as well by the newest-first index, read
# in order and filtered; a rare one (1%) by its own. For one owner's names the planner may read
# the owner's rows rather than the name's trigrams: bounded by what the owner has.
PAGE_ROWS = 500
PLANS: list[tuple[str, dict[str, Any], set[str], int]] = [
    ("user", {}, {"scenario_owner_list_idx"}, PAGE_ROWS),
    ("user", {"statuses": ["active"]}, {"scenario_owner_status_idx"}, PAGE_ROWS),
    (
        "user",
        {"statuses": ["inactive"]},
        {"scenario_owner_status_idx", "scenario_owner_list_idx"},
        PAGE_ROWS,
    ),
    ("user", {"statuses": ["active", "init_startup"]}, {"scenario_owner_status_idx"}, PAGE_ROWS),
    ("staff", {}, {"scenario_list_idx"}, PAGE_ROWS),
    ("staff", {"statuses": ["init_startup"]}, {"scenario_status_list_idx"}, PAGE_ROWS),
    (
        "staff",
        {"statuses": ["inactive"]},
        {"scenario_status_list_idx", "scenario_list_idx"},
        PAGE_ROWS,
    ),
    ("staff", {"name": "door"}, {"scenario_name_trgm_idx"}, PAGE_ROWS),
    ("user", {"name": "door"}, {"scenario_name_trgm_idx", "scenario_owner_list_idx"}, 1000),
]


def rows_touched(node: dict[str, Any]) -> int:
    kept = node.get("Actual Rows", 0) * node.get("Actual Loops", 1)
    removed = node.get("Rows Removed by Filter", 0) + node.get("Rows Removed by Index Recheck", 0)
    return int(kept + removed)


def test_each_list_query_is_served_by_its_index(crowded: dict[str, Any]) -> None:
    """The planner's own choice, on a table with enough rows and fresh statistics, run
    (EXPLAIN ANALYZE): an expected index is used, no table is read in full, and no step touches
    more rows than the case allows, so no page sorts or filters the whole table.

    Not enable_seqscan=off: that forces an index whether or not it serves the query."""
    for who, filters, indexes, most in PLANS:
        user = crowded[who]
        first = selectors.scenario_page(user=user, limit=50, **filters)
        assert first.results
        # A cursor into the middle of what matches: the next page, or half of a short first one
        # (with next to nothing before it, the cursor alone bounds the scan).
        cursors: list[str | None] = [None]
        if first.next_cursor or len(first.results) >= 4:
            cursors.append(
                first.next_cursor or selectors._cursor(first.results[len(first.results) // 2])
            )
        for cursor in cursors:
            qs = selectors.scenario_list(user=user, cursor=cursor, **filters)[:51]
            plan = json.loads(qs.explain(format="json", analyze=True))[0]["Plan"]
            nodes = plan_nodes(plan)
            shown = f"{who} {filters}: " + json.dumps(plan, indent=1)
            assert indexes & {n.get("Index Name") for n in nodes}, shown
            assert not any(n["Node Type"] == "Seq Scan" for n in nodes), shown
            assert max(rows_touched(n) for n in nodes) <= most, shown


# --- deletes from the admin ----------------------------------------------------------------


def test_a_delete_from_the_admin_is_the_apis_delete(
    django_user_model: type[User], client: Any, user: User, on_commit: Any
) -> None:
    """The admin's delete (one or a selection) fences the runner out and removes the
    snapshots and Redis keys, as the API's does; the rows alone would leave them behind."""
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    running = make_scenario(Status.ACTIVE, owner=user, runner="host:1")
    lease = Lease.acquire(running.pk, running.epoch)
    assert lease is not None
    store_snapshot(running, 1)
    folder = Path(video_storage().path(snapshot_dir(running.pk)))
    chosen = [make_scenario(Status.INACTIVE, owner=user) for _ in range(2)]
    store_snapshot(chosen[0], 1)
    kept = make_scenario(Status.INACTIVE, owner=user)

    with on_commit():
        answer = client.post(f"/admin/scenarios/scenario/{running.pk}/delete/", {"post": "yes"})
    assert answer.status_code == 302
    assert stop_requested(running.pk, running.epoch)  # the runner leaves within a frame
    with pytest.raises(LeaseLost):
        lease.renew()
    assert not folder.exists()
    assert scenario_keys_in_redis(running.pk) == [keys.stop(running.pk)]

    with on_commit():
        answer = client.post(
            "/admin/scenarios/scenario/",
            {
                "action": "delete_selected",
                "_selected_action": [str(s.pk) for s in chosen],
                "post": "yes",
            },
        )
    assert answer.status_code == 302
    assert not Scenario.objects.filter(pk__in=[s.pk for s in chosen]).exists()
    assert not Path(video_storage().path(snapshot_dir(chosen[0].pk))).exists()
    assert list(Scenario.objects.values_list("pk", flat=True)) == [kept.pk]


def test_deleting_a_user_deletes_their_scenarios_through_the_scenario_delete(
    user: User, other_user: User, on_commit: Any
) -> None:
    running = make_scenario(Status.ACTIVE, owner=other_user, runner="host:1")
    lease = Lease.acquire(running.pk, running.epoch)
    assert lease is not None
    store_snapshot(running, 1)
    kept = make_scenario(Status.INACTIVE, owner=user)
    with on_commit():
        other_user.delete()
    assert stop_requested(running.pk, running.epoch)
    with pytest.raises(LeaseLost):
        lease.renew()
    assert not Path(video_storage().path(snapshot_dir(running.pk))).exists()
    assert list(Scenario.objects.values_list("pk", flat=True)) == [kept.pk]
