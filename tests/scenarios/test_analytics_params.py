"""The analytics keys of params: accepted shapes, clear 400s naming the field, a webhook URL
held to the source host checks, and a secret that answers never show."""

from __future__ import annotations

from typing import Any

import pytest

from scenarios.models import Scenario
from tests.media_servers.internal_host import InternalHost

pytestmark = pytest.mark.django_db

ZONE = {"name": "door", "polygon": [[0.1, 0.2], [0.5, 0.2], [0.5, 0.9], [0.1, 0.9]], "dwell": 10}
LINE = {"name": "entry", "points": [[0.5, 0.0], [0.5, 1.0]], "classes": ["person"]}
HOOK = {"url": "http://127.0.0.1:9/hook", "secret": "s3cret-s3cret-s3cret"}


def create(api: Any, **params: Any) -> Any:
    return api.post("/scenario/", {"source": "short.mp4", "params": params}, format="json")


def test_zones_lines_and_webhook_are_accepted_and_the_secret_is_masked(api: Any) -> None:
    answer = create(api, zones=[ZONE], lines=[LINE], webhook=HOOK)
    assert answer.status_code == 201, answer.json()
    body = answer.json()
    assert body["params"]["webhook"] == {"url": HOOK["url"], "secret": "***"}
    assert body["counts"] == {}
    assert HOOK["secret"] not in str(api.get(f"/scenario/{body['id']}/").json())
    stored = Scenario.objects.get(pk=body["id"])
    assert stored.params["webhook"]["secret"] == HOOK["secret"]  # the runner needs it


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"zones": [{**ZONE, "polygon": [[0.1, 0.1], [0.2, 0.2]]}]}, "zones[0]"),
        ({"zones": [{**ZONE, "polygon": [[0, 0], [1, 1], [1, 0], [0, 1]]}]}, "zones[0]"),
        ({"zones": [{**ZONE, "polygon": [[0.1, 0.2], [1.5, 0.2], [0.5, 0.9]]}]}, "zones[0]"),
        ({"zones": [{**ZONE, "dwell": 0}]}, "zones[0]"),
        ({"zones": [{**ZONE, "extra": 1}]}, "zones[0]"),
        ({"lines": [{**LINE, "points": [[0.5, 0.5], [0.5, 0.5]]}]}, "lines[0]"),
        ({"lines": [{**LINE, "points": [[0.5, 0.5]]}]}, "lines[0]"),
        ({"lines": [{**LINE, "name": ""}]}, "lines[0]"),
        ({"zones": [ZONE], "lines": [{**LINE, "name": "door"}]}, "lines[0]"),
        ({"lines": [{**LINE, "classes": "person"}]}, "lines[0]"),
        ({"track": "yes"}, "track"),
        ({"zones": {"name": "door"}}, "zones"),
        ({"webhook": {**HOOK, "secret": "short"}}, "webhook.secret"),
        ({"webhook": {**HOOK, "url": "ftp://127.0.0.1/hook"}}, "webhook.url"),
        ({"webhook": {**HOOK, "url": "http://169.254.169.254/latest"}}, "webhook.url"),
        ({"webhook": {**HOOK, "url": "http://127.0.0.1/x\r\nHost: evil"}}, "webhook.url"),
        ({"webhook": {**HOOK, "url": "http://user:pw@127.0.0.1/x"}}, "webhook.url"),
    ],
)
def test_bad_analytics_params_answer_400_naming_the_field(
    api: Any, params: dict[str, Any], field: str
) -> None:
    answer = create(api, **params)
    assert answer.status_code == 400
    assert field in str(answer.json()["params"])
    assert not Scenario.objects.exists()


def test_a_webhook_on_a_denied_host_is_refused(api: Any, internal_host: InternalHost) -> None:
    answer = create(api, webhook={**HOOK, "url": f"http://{internal_host.address}/hook"})
    assert answer.status_code == 400 and "deny list" in str(answer.json())
    assert internal_host.untouched()
