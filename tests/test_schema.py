"""The OpenAPI schema (drf-spectacular) against the contract and against the real API.

The schema is fetched the way a client would (no token), and its shapes are compared with real
answers of the API, so that code and documentation cannot drift apart unnoticed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from django.core.management import call_command
from django.test import Client
from pytest_django import Settings
from rest_framework.test import APIClient

from scenarios.analytics_params import ANALYTICS_KEYS, MAX_POLYGON_POINTS, MAX_SECRET, MIN_SECRET
from scenarios.models import Scenario
from scenarios.params import MOTION_MAX_GAP_RANGE, TARGET_FPS_RANGE
from tests.factories import make_prediction

pytestmark = pytest.mark.django_db

SCHEMA_URL = "/api/schema/?format=json"

# Every operation of the contract, with the answers it documents (at least these).
CONTRACT: dict[tuple[str, str], set[str]] = {
    ("/scenario/", "post"): {"201", "400", "401"},
    ("/scenario/", "get"): {"200", "400", "401"},
    ("/scenario/{scenario_id}/", "delete"): {"204", "401", "404"},
    ("/scenario/{scenario_id}/", "post"): {"200", "202", "400", "401", "404", "409"},
    ("/scenario/{scenario_id}/", "get"): {"200", "401", "404"},
    ("/prediction/{scenario_id}/", "get"): {"200", "401", "404"},
    ("/health/", "get"): {"200", "503"},
    ("/event/{scenario_id}/", "get"): {"200", "400", "401", "404"},
    ("/event/{scenario_id}/{seq}/snapshot.jpg", "get"): {"200", "401", "404"},
}
# Endpoints beyond the contract (which welcomes more), with the answers they document.
EXTRA: dict[tuple[str, str], set[str]] = {
    ("/video/", "post"): {"201", "400", "401", "413", "503"},
}
# The schema documents its own endpoint (the Swagger UI page is left out of it).
SCHEMA_OPERATIONS = {("/api/schema/", "get")}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
BOX_FIELDS = {"label", "class_id", "confidence", "x1", "y1", "x2", "y2"}


@pytest.fixture
def schema() -> dict[str, Any]:
    response = Client().get(SCHEMA_URL)
    assert response.status_code == 200, response.content
    return cast("dict[str, Any]", response.json())


def component(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return cast("dict[str, Any]", schema["components"]["schemas"][name])


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow a $ref (also one wrapped in allOf) to its component."""
    if "allOf" in node and len(node["allOf"]) == 1:
        node = node["allOf"][0]
    ref = node.get("$ref")
    if ref:
        return component(schema, ref.rsplit("/", 1)[-1])
    return node


def response_schema(schema: dict[str, Any], path: str, method: str, code: str) -> dict[str, Any]:
    answer = schema["paths"][path][method]["responses"][code]
    return resolve(schema, answer["content"]["application/json"]["schema"])


def properties(node: dict[str, Any]) -> set[str]:
    return set(node["properties"])


def test_schema_and_docs_need_no_token() -> None:
    anonymous = Client()
    assert anonymous.get(SCHEMA_URL).status_code == 200
    # A wrong token does not lock anyone out of the documentation either.
    wrong = Client(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert wrong.get(SCHEMA_URL).status_code == 200
    assert wrong.get("/api/docs/").status_code == 200
    # ... while the API itself still wants a valid token.
    assert anonymous.post("/scenario/", {"source": "short.mp4"}).status_code == 401
    assert wrong.get("/prediction/00000000-0000-0000-0000-000000000000/").status_code == 401


def test_schema_is_openapi_3_with_the_project_title(schema: dict[str, Any]) -> None:
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "MISIS Video Analytics API"
    assert schema["info"]["version"]


def test_paths_and_operations_match_the_contract(schema: dict[str, Any]) -> None:
    documented = {
        (path, method)
        for path, item in schema["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }
    assert documented == set(CONTRACT) | set(EXTRA) | SCHEMA_OPERATIONS


@pytest.mark.parametrize(("path", "method"), sorted({**CONTRACT, **EXTRA}))
def test_each_operation_documents_the_contract_answers(
    schema: dict[str, Any], path: str, method: str
) -> None:
    operation = schema["paths"][path][method]
    assert {**CONTRACT, **EXTRA}[(path, method)] <= set(operation["responses"])
    assert operation["operationId"]


def test_token_auth_everywhere_but_health(schema: dict[str, Any]) -> None:
    schemes = schema["components"]["securitySchemes"]
    assert schemes["tokenAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": schemes["tokenAuth"]["description"],
    }
    for path, method in {**CONTRACT, **EXTRA}:
        security = schema["paths"][path][method].get("security", [])
        if path == "/health/":
            assert {"tokenAuth": []} not in security
        else:
            assert security == [{"tokenAuth": []}], (path, method)


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/scenario/{scenario_id}/", "get"),
        ("/scenario/{scenario_id}/", "post"),
        ("/scenario/{scenario_id}/", "delete"),
        ("/prediction/{scenario_id}/", "get"),
    ],
)
def test_scenario_id_is_a_uuid_path_parameter(
    schema: dict[str, Any], path: str, method: str
) -> None:
    params = {p["name"]: p for p in schema["paths"][path][method]["parameters"]}
    scenario_id = params["scenario_id"]
    assert scenario_id["in"] == "path"
    assert scenario_id["required"] is True
    assert scenario_id["schema"] == {"type": "string", "format": "uuid"}


def test_prediction_query_parameters(schema: dict[str, Any]) -> None:
    params = {
        p["name"]: p
        for p in schema["paths"]["/prediction/{scenario_id}/"]["get"]["parameters"]
        if p["in"] == "query"
    }
    assert set(params) == {"after", "limit"}
    assert params["after"]["schema"] == {"type": "integer", "minimum": -1}
    assert params["limit"]["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 1000,
        "default": 100,
    }
    assert not any(p.get("required") for p in params.values())


def test_request_bodies(schema: dict[str, Any]) -> None:
    create = schema["paths"]["/scenario/"]["post"]["requestBody"]
    body = resolve(schema, create["content"]["application/json"]["schema"])
    assert properties(body) == {"source", "name", "params"}
    assert body["required"] == ["source"]
    assert create["required"] is True

    command = schema["paths"]["/scenario/{scenario_id}/"]["post"]["requestBody"]
    body = resolve(schema, command["content"]["application/json"]["schema"])
    assert properties(body) == {"status"}
    assert set(resolve(schema, body["properties"]["status"])["enum"]) == {
        "init_shutdown",
        "init_startup",
    }


def test_params_schema_states_every_key_with_the_ranges_the_server_checks(
    schema: dict[str, Any],
) -> None:
    create = schema["paths"]["/scenario/"]["post"]["requestBody"]
    body = resolve(schema, create["content"]["application/json"]["schema"])
    params = body["properties"]["params"]
    detector = {"target_fps", "confidence", "classes", "imgsz", "loop", "reconnect_timeout"}
    motion = {"motion", "motion_max_gap", "motion_threshold"}
    assert set(params["properties"]) == detector | motion | set(ANALYTICS_KEYS) | {"retention"}
    assert params["additionalProperties"] is False
    fps = params["properties"]["target_fps"]
    assert (fps["minimum"], fps["maximum"], fps["exclusiveMinimum"]) == (
        TARGET_FPS_RANGE.low,
        TARGET_FPS_RANGE.high,
        True,
    )
    gap = params["properties"]["motion_max_gap"]
    assert (gap["minimum"], gap["maximum"], gap["exclusiveMinimum"]) == (
        MOTION_MAX_GAP_RANGE.low,
        MOTION_MAX_GAP_RANGE.high,
        True,
    )
    zone = params["properties"]["zones"]["items"]
    assert zone["required"] == ["name", "polygon"]
    assert zone["properties"]["polygon"]["maxItems"] == MAX_POLYGON_POINTS
    line = params["properties"]["lines"]["items"]["properties"]["points"]
    assert (line["minItems"], line["maxItems"]) == (2, 2)
    secret = params["properties"]["webhook"]["properties"]["secret"]
    assert (secret["minLength"], secret["maxLength"]) == (MIN_SECRET, MAX_SECRET)


def test_response_bodies_of_the_scenario_operations(schema: dict[str, Any]) -> None:
    scenario = component(schema, "Scenario")
    assert response_schema(schema, "/scenario/", "post", "201") == scenario
    assert response_schema(schema, "/scenario/{scenario_id}/", "get", "200") == scenario
    for code in ("200", "202"):
        assert response_schema(schema, "/scenario/{scenario_id}/", "post", code) == scenario
    conflict = response_schema(schema, "/scenario/{scenario_id}/", "post", "409")
    assert properties(conflict) == {"detail", "status"}
    for path, method in CONTRACT:
        if "404" in CONTRACT[(path, method)]:
            assert properties(response_schema(schema, path, method, "404")) == {"detail"}
    statuses = set(component(schema, "ScenarioStatusEnum")["enum"])
    assert statuses == {
        "init_startup",
        "in_startup_processing",
        "active",
        "init_shutdown",
        "in_shutdown_processing",
        "inactive",
    }
    assert set(component(schema, "StopReasonEnum")["enum"]) == {
        "requested",
        "end_of_stream",
        "error",
    }


def test_scenario_component_is_what_the_api_returns(schema: dict[str, Any], api: APIClient) -> None:
    created = api.post("/scenario/", {"source": "short.mp4", "name": "cam"}, format="json")
    assert created.status_code == 201, created.content
    fetched = api.get(f"/scenario/{created.json()['id']}/")
    assert fetched.status_code == 200
    scenario = component(schema, "Scenario")
    assert properties(scenario) == set(fetched.json()) == set(created.json())
    # Every field is always present: the schema says so.
    assert set(scenario["required"]) == set(fetched.json())
    nullable = {name for name, prop in scenario["properties"].items() if prop.get("nullable")}
    for name, value in fetched.json().items():
        if value is None:
            assert name in nullable, f"{name} is null in the API but not nullable in the schema"


def test_prediction_page_component_is_what_the_api_returns(
    schema: dict[str, Any], api: APIClient
) -> None:
    created = api.post("/scenario/", {"source": "short.mp4"}, format="json")
    scenario = Scenario.objects.get(pk=created.json()["id"])
    make_prediction(scenario, width=320, height=240, inference_ms=4.0)
    response = api.get(f"/prediction/{scenario.pk}/", {"limit": 1})
    assert response.status_code == 200
    page = response.json()

    documented = response_schema(schema, "/prediction/{scenario_id}/", "get", "200")
    assert documented == component(schema, "PredictionPage")
    assert properties(documented) == set(page)
    assert documented["properties"]["next"]["nullable"] is True
    assert page["next"] is not None  # a full page: the schema's URL case
    item = resolve(schema, documented["properties"]["results"]["items"])
    assert properties(item) == set(page["results"][0])
    box = resolve(schema, item["properties"]["boxes"]["items"])
    assert properties(box) == BOX_FIELDS == set(page["results"][0]["boxes"][0])


def test_video_upload_is_documented_as_the_api_answers(
    schema: dict[str, Any], api: APIClient, video_root: Path, tmp_path: Path, settings: Settings
) -> None:
    settings.MISIS_VIDEO_ROOT = tmp_path
    operation = schema["paths"]["/video/"]["post"]
    assert set(operation["requestBody"]["content"]) == {"multipart/form-data"}
    body = resolve(schema, operation["requestBody"]["content"]["multipart/form-data"]["schema"])
    assert properties(body) == {"file"}
    assert body["required"] == ["file"]
    assert body["properties"]["file"] == {
        "type": "string",
        "format": "binary",
        "description": body["properties"]["file"]["description"],
    }
    with (video_root / "short.mp4").open("rb") as f:
        response = api.post("/video/", {"file": f}, format="multipart")
    assert response.status_code == 201, response.content
    documented = response_schema(schema, "/video/", "post", "201")
    assert properties(documented) == set(response.json()) == set(documented["required"])
    refused = api.post("/video/", {}, format="multipart")
    assert refused.status_code == 400
    assert set(refused.json()) == {"file"}


def test_health_component_is_what_the_api_returns(schema: dict[str, Any]) -> None:
    response = Client().get("/health/")
    assert response.status_code in (200, 503)
    body = response.json()
    for code in ("200", "503"):
        documented = response_schema(schema, "/health/", "get", code)
        assert documented == component(schema, "Health")
    health = component(schema, "Health")
    assert properties(health) == set(body) == {"database", "redis", "workers", "inference"}
    workers = resolve(schema, health["properties"]["workers"])
    assert properties(workers) == set(body["workers"]) == {"runner", "inference", "orchestrator"}
    inference = resolve(schema, health["properties"]["inference"])
    assert set(inference["required"]) <= set(body["inference"]) <= properties(inference)


def test_docs_page_is_html() -> None:
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    content = response.content.decode()
    assert "swagger-ui" in content.lower()
    assert "/api/schema/" in content


def test_spectacular_validates_without_warnings(tmp_path: Path) -> None:
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert "MISIS Video Analytics API" in out.read_text()
