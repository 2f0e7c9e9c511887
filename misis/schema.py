"""OpenAPI postprocessing: what drf-spectacular cannot read off the serializers."""

from __future__ import annotations

from typing import Any

# Request bodies whose serializer refuses unknown fields with a 400
# (ScenarioCreateSerializer.validate): the schema says so, so that clients and fuzzers know.
CLOSED_REQUEST_BODIES = ("ScenarioCreateRequest",)


def close_request_bodies(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    schemas = result.get("components", {}).get("schemas", {})
    for name in CLOSED_REQUEST_BODIES:
        if name in schemas:
            schemas[name]["additionalProperties"] = False
    return result
