"""Property-based run of the OpenAPI schema against the live API (schemathesis): it says what
the server enforces, and no input gets a 5xx.

The schema is read from ``/api/schema/`` the way a client would, and every documented operation
is called in-process through Django's WSGI application (inside the test's transaction), with the
token of a user who owns scenarios. Path parameters are steered onto real ids (the user's own
scenarios in several statuses, another user's, and whatever the generator makes up), so that
requests reach existing rows, not only 404s. Each operation gets a positive run (valid input)
and a negative one (input the schema forbids), and schemathesis' coverage cases (each bound and
its neighbours); every schemathesis check runs (no 5xx, schema-valid input accepted, invalid
input refused, answers as documented), plus: another user's scenario is never answered.

Bounded and reproducible: MAX_EXAMPLES per operation and mode, derandomized (the seed comes from
the test's code), no example database; the same requests every run, about ten seconds in all.

Why not ``schemathesis.pytest.from_fixture(...).parametrize()``: in schemathesis 4.32.5 it sets
``request.node._nodeid``, which pytest 9 no longer has (AttributeError). The public pieces used
here instead (``from_wsgi``, ``APIOperation.as_strategy``, ``iter_coverage_cases``,
``Case.call_and_validate``) are the ones that integration and the CLI's phases are built on.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.contrib.auth.models import User
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from scenarios.analytics_params import GEOMETRY_RULES
from scenarios.models import Status
from tests.factories import make_prediction, make_scenario
from tests.helpers import token_key

SCHEMA_PATH = "/api/schema/?format=json"
MAX_EXAMPLES = 30
CONTRACT = {
    "POST /scenario/",
    "GET /scenario/{scenario_id}/",
    "POST /scenario/{scenario_id}/",
    "GET /prediction/{scenario_id}/",
    "GET /health/",
}
# Where JSON Schema cannot say all the server checks, and the schema says it in words: a source
# whose scheme, host and path pass sources/, a file FFmpeg decodes under a video file name.
# Schema-valid input may be refused there (400), naming that field and nothing else.
# A list cursor that the server did not sign; a name with a NUL character (PostgreSQL's text
# cannot hold one).
UNSAID = {
    "POST /scenario/": {"source"},
    "POST /video/": {"file"},
    "GET /scenario/": {"cursor", "name"},
}
# And in params, what analytics_params.py checks beyond its JSON Schema (GEOMETRY_RULES): a
# polygon crossing itself, a line of one point, a name used twice, too many zones and lines,
# and the webhook URL's host (the checks of a source). A 400 naming ``params`` may say those
# and nothing else.
SHAPE_KEY = re.compile(r"(zones|lines)\[\d+\]|zones")
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def wsgi_app(db: None) -> Iterator[WSGIHandler]:
    """Django's WSGI application, inside the test's transaction.

    A bare WSGIHandler closes the database connection at the start and end of each request
    (``close_old_connections``), which would end the test transaction; Django's test client
    switches that off the same way.
    """
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield WSGIHandler()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def ids(user: User, other_user: User) -> dict[str, str]:
    """Scenarios in several statuses, so that commands meet each branch of the state machine."""
    mine = [make_scenario(status, owner=user) for status in (Status.ACTIVE, Status.INACTIVE)]
    mine.append(make_scenario(Status.INIT_STARTUP, owner=user))
    foreign = make_scenario(Status.ACTIVE, owner=other_user)
    # A few predictions, so that pages of real rows are rendered too.
    for scenario in (mine[0], foreign):
        for index in range(3):
            make_prediction(scenario, index)
    return {
        "active": str(mine[0].pk),
        "inactive": str(mine[1].pk),
        "starting": str(mine[2].pk),
        "foreign": str(foreign.pk),
    }


@pytest.fixture
def token(user: User) -> str:
    return token_key(Token.objects.get_or_create(user=user)[0])


@pytest.fixture
def api_schema(wsgi_app: WSGIHandler, ids: dict[str, str], token: str) -> Any:
    config = schemathesis.Config.from_dict(
        {
            # Every request carries the owner's token; the generator leaves the header alone.
            "headers": {"Authorization": f"Token {token}"},
            "generation": {"with-security-parameters": False},
        }
    )
    schema = schemathesis.openapi.from_wsgi(SCHEMA_PATH, wsgi_app, config=config)

    # In a fixed order (not by the random uuids), so that every run meets the same statuses.
    real = st.sampled_from([ids[name] for name in ("active", "inactive", "starting", "foreign")])

    @schema.hook
    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
        # Half the time the generated value (a random UUID, or junk in negative mode), half the
        # time a real scenario: the user's own ones, and another user's.
        if not isinstance(path_parameters, dict) or not is_uuid(path_parameters.get("scenario_id")):
            # Junk made on purpose (negative mode) stays junk: swapping in a real id would make
            # the request valid behind the generator's back, and its checks would misjudge it.
            return st.just(path_parameters)
        return st.one_of(
            st.just(path_parameters),
            real.map(lambda sid: {**path_parameters, "scenario_id": sid}),
        )

    return schema


def is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return isinstance(value, str)


def unsaid_params(errors: Any) -> bool:
    """Whether a 400's ``params`` errors are all rules JSON Schema cannot state."""
    return (
        isinstance(errors, dict)
        and bool(errors)
        and all(
            key == "webhook.url"
            or (
                SHAPE_KEY.fullmatch(key) is not None
                and isinstance(message, str)
                and any(rule in message for rule in GEOMETRY_RULES)
            )
            for key, message in errors.items()
        )
    )


def call(case: Any, foreign: str, codes: Counter[int]) -> None:
    """Sends one case and runs every schemathesis check on the answer, and ours."""
    # The configured header, also on coverage cases (made outside the strategies that add it).
    headers = case.operation.schema.config.headers
    unsaid = UNSAID.get(case.operation.label)
    positive = case.meta is not None and case.meta.generation.mode is GenerationMode.POSITIVE
    if unsaid and positive:
        response = case.call_and_validate(
            headers=headers, excluded_checks=[positive_data_acceptance]
        )
        if response.status_code == 400:
            body = response.json()
            named = set(body)
            if "params" in named and unsaid_params(body["params"]):
                named.remove("params")
            assert named <= unsaid, response.text
    else:
        response = case.call_and_validate(headers=headers)
    codes[response.status_code] += 1
    assert response.status_code < 500, response.text
    # Another user's scenario stays invisible, whatever else the request carries.
    if (case.path_parameters or {}).get("scenario_id") == foreign:
        assert response.status_code in (404, 405, 406), response.text


def fuzz(operation: Any, mode: GenerationMode, foreign: str, codes: Counter[int]) -> None:
    """One Hypothesis run over one operation, in one generation mode."""

    @SETTINGS
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        call(case, foreign, codes)

    try:
        run()
    except Unsatisfiable:
        # Nothing to make invalid (GET /health/ takes no input): schemathesis skips these too.
        if mode is GenerationMode.POSITIVE:
            raise


def test_no_server_errors(api_schema: Any, ids: dict[str, str]) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    fuzzed = {op.label for op in operations}
    documented = {
        f"{method.upper()} {path}"
        for path, item in api_schema.raw_schema["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }
    # Every documented operation is fuzzed (a new one joins by itself), but the schema document,
    # which schemathesis leaves out on purpose.
    assert fuzzed == documented - {"GET /api/schema/"}
    assert fuzzed >= CONTRACT

    seen: dict[str, Counter[int]] = {}
    for operation in operations:
        codes = seen.setdefault(operation.label, Counter())
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz(operation, mode, ids["foreign"], codes)

    # The run reached real rows and got past validation, not only 400s and 404s.
    assert seen["POST /scenario/"][201], seen
    assert seen["GET /scenario/{scenario_id}/"][200], seen
    assert seen["POST /scenario/{scenario_id}/"][200] + seen["POST /scenario/{scenario_id}/"][202]
    assert seen["GET /prediction/{scenario_id}/"][200], seen


def test_boundaries_against_real_rows(api_schema: Any, ids: dict[str, str]) -> None:
    """schemathesis' coverage phase: each documented bound and its neighbours (limit=1000 and
    1001, params of the wrong type, a file name without its extension, ...), every check on.

    Deterministic; each case whose path names a scenario goes to the user's active one too,
    so that a bound is met past the 404 of an unknown id.
    """
    seen: dict[str, Counter[int]] = {}
    for result in api_schema.get_all_operations():
        operation = result.ok()
        codes = seen.setdefault(operation.label, Counter())
        cases = api_schema.iter_coverage_cases(
            operation,
            generation_modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
            generation_config=api_schema.config.generation_for(operation=operation),
        )
        for case in cases:
            call(case, ids["foreign"], codes)
            if is_uuid((case.path_parameters or {}).get("scenario_id")):
                case.path_parameters["scenario_id"] = ids["active"]
                call(case, ids["foreign"], codes)
    assert seen["GET /prediction/{scenario_id}/"][400], seen  # past the lookup, to the bounds
    assert seen["POST /scenario/"][201], seen


# --- 500s once found by probing the same input space; fixed, kept as regressions ---------------
# Each is a 400 by the contract ("values out of range ... answers 400").

BAD_BODIES = [
    pytest.param(
        '{"source": "short.mp4", "params": {"classes": ["person\\u0000"]}}',
        id="nul-in-params-classes",
    ),
    pytest.param(
        '{"source": "short.mp4", "params": {"classes": ["person\\ud800"]}}',
        id="lone-surrogate-in-params-classes",
    ),
    pytest.param(
        '{"source": "rtsp://[::1/stream"}',
        id="unclosed-ipv6-host",
    ),
    # Their neighbours, already refused with a 400.
    pytest.param('{"source": "short.mp4", "name": "a\\u0000"}', id="nul-in-name"),
    pytest.param('{"source": "short.mp4", "name": "a\\ud800"}', id="surrogate-in-name"),
    pytest.param('{"source": "rtsp://cam/\\ud800"}', id="surrogate-in-source"),
    pytest.param('{"source": "short.mp4", "params": {"target_fps": NaN}}', id="nan"),
    pytest.param('{"source": "short.mp4", "params": {"target_fps": 1e400}}', id="huge-float"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("body", BAD_BODIES)
def test_bad_input_is_a_400_not_a_500(body: str, user: User) -> None:
    client = Client(
        raise_request_exception=False,
        HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}",
    )
    response = client.post("/scenario/", body, content_type="application/json")
    assert response.status_code == 400, response.content
