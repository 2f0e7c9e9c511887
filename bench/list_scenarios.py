"""GET /scenario/ on 100,000 scenarios, and DELETE of a scenario with many predictions.

    flock /tmp/bench.lock .venv/bin/python -m bench.list_scenarios [--scenarios 100000]
        [--requests 30] [--predictions 300000]

Writes ``--scenarios`` scenarios of 10 owners (the bench user has a tenth of them; 1% in each
status but ``inactive``; 1 in 997 named "… door", the rest "… yard") with one INSERT, then asks
each list query ``--requests`` times through DRF's APIClient (in process: routing,
authentication, the query and the serialization of the page, no network) and prints p50/p99 in
milliseconds. Then deletes a scenario with ``--predictions`` predictions (and 1 event per 100
frames) through the API and prints how long the delete took. Uses its own database
(misis_bench, dropped and created) and Redis database 13.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench.common import bench_token, fresh_database, insert_predictions, pct


def timed(client: Any, url: str, requests: int) -> tuple[float, float, int]:
    """p50 and p99 of ``requests`` GETs of ``url``, in ms, and the size of the last page."""
    took = []
    size = 0
    for _ in range(requests):
        t0 = time.perf_counter()
        answer = client.get(url)
        took.append((time.perf_counter() - t0) * 1000)
        assert answer.status_code == 200, answer.content
        size = len(answer.json()["results"])
    return pct(took, 50), pct(took, 99), size


def deep_cursor(client: Any, url: str, pages: int) -> str:
    """The ``next`` URL after following ``pages`` pages of ``url`` (or the last page's URL)."""
    for _ in range(pages):
        nxt = client.get(url).json()["next"]
        if nxt is None:
            break
        url = nxt.replace("http://testserver", "")
    return url


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenarios", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--predictions", type=int, default=300_000)
    args = parser.parse_args()

    fresh_database()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from scenarios.models import Event, Prediction, Scenario
    from testbed.scenario_rows import insert_scenarios

    users = get_user_model()
    bench_token()
    owner = users.objects.get(username="bench")
    staff = users.objects.create_user(username="staff", is_staff=True)
    others = [users.objects.create_user(username=f"u{i}") for i in range(9)]
    t0 = time.perf_counter()
    insert_scenarios(owner_ids=[owner.pk] + [u.pk for u in others], count=args.scenarios,
                     door_every=997)  # fmt: skip
    print(f"# {args.scenarios} scenarios written in {time.perf_counter() - t0:.1f} s")

    def client_of(user: Any) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0]}")
        return client

    mine, everyone = client_of(owner), client_of(staff)
    owned = Scenario.objects.filter(owner=owner).count()
    queries = [
        ("owner", mine, "/scenario/"),
        ("owner", mine, "/scenario/?limit=500"),
        ("owner", mine, deep_cursor(mine, "/scenario/?limit=500", 10)),
        ("owner", mine, "/scenario/?status=active"),
        ("owner", mine, "/scenario/?status=inactive"),
        ("owner", mine, "/scenario/?status=active&status=init_shutdown"),
        ("owner", mine, "/scenario/?name=door"),
        ("owner", mine, "/scenario/?name=yard"),
        ("staff", everyone, "/scenario/"),
        ("staff", everyone, deep_cursor(everyone, "/scenario/?limit=500", 100)),
        ("staff", everyone, "/scenario/?status=init_startup"),
        ("staff", everyone, "/scenario/?status=inactive"),
        ("staff", everyone, "/scenario/?name=door"),
        ("staff", everyone, "/scenario/?name=DOOR&status=inactive"),
    ]
    print(f"# GET /scenario/, {args.requests} requests each (owner: {owned} scenarios)")
    print(f"{'who':6} {'query':58} {'rows':>5} {'p50 ms':>8} {'p99 ms':>8}")
    for who, client, url in queries:
        p50, p99, size = timed(client, url, args.requests)
        shown = url if "cursor=" not in url else url.split("cursor=")[0] + "cursor=<deep>"
        print(f"{who:6} {shown:58} {size:5d} {p50:8.1f} {p99:8.1f}")

    victim = Scenario.objects.filter(owner=owner).order_by("-created_at").first()
    assert victim is not None
    insert_predictions(victim.pk, args.predictions)
    with connection.cursor() as cur:
        cur.execute(
            """INSERT INTO scenarios_event (id, scenario_id, seq, epoch, type, track_id, label,
                   confidence, frame_index, pts, captured_at, box, snapshot, webhook_attempts,
                   created_at)
               SELECT gen_random_uuid(), %s, g, 1, 'line_cross', g, 'person', 0.9, g * 100,
                      g * 4.0, now(), '{}'::jsonb, '', 0, now()
               FROM generate_series(1, %s) AS g""",
            [victim.pk, args.predictions // 100],
        )
        cur.execute("ANALYZE scenarios_event")
    t0 = time.perf_counter()
    answer = mine.delete(f"/scenario/{victim.pk}/")
    took = time.perf_counter() - t0
    assert answer.status_code == 204, answer.content
    assert not Prediction.objects.filter(scenario_id=victim.pk).exists()
    assert not Event.objects.filter(scenario_id=victim.pk).exists()
    print(
        f"# DELETE /scenario/<id>/ with {args.predictions} predictions and"
        f" {args.predictions // 100} events: {took * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
