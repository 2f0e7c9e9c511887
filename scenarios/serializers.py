"""Input checks and output shapes of the scenario API (the contract in shared/api-contract.md)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from rest_framework import serializers

from runner.params import ParamsError, validate_params
from runner.sources import SourceError, resolve_local
from scenarios.models import Scenario, Status

NETWORK_SCHEMES = ("rtsp", "rtsps", "onvif", "http", "https", "s3")


def validate_source(value: str) -> str:
    value = value.strip()
    if not value:
        raise serializers.ValidationError("must not be empty")
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme:
        if scheme not in NETWORK_SCHEMES:
            raise serializers.ValidationError(
                f"scheme {scheme!r} is not supported; use one of {', '.join(NETWORK_SCHEMES)}"
                " or a path relative to the video root"
            )
        if not parts.netloc:
            raise serializers.ValidationError(f"{scheme} source needs a host (or bucket)")
        return value
    if "\x00" in value:
        raise serializers.ValidationError("must not contain NUL")
    try:
        resolve_local(value)
    except SourceError as exc:
        raise serializers.ValidationError(str(exc)) from exc
    return value


class StrictCharField(serializers.CharField):
    """A string, and only a string: DRF would quietly turn 5 into "5"."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class ScenarioCreateSerializer(serializers.Serializer):
    source = StrictCharField(max_length=2048, trim_whitespace=True, allow_blank=False)
    name = StrictCharField(max_length=200, required=False, allow_blank=True, default="")
    params = serializers.JSONField(required=False, default=dict, allow_null=True)

    def validate_source(self, value: str) -> str:
        return validate_source(value)

    def validate_params(self, value: Any) -> dict[str, Any]:
        try:
            return validate_params(value)
        except ParamsError as exc:
            raise serializers.ValidationError(exc.errors) from exc

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = set(self.initial_data) - set(self.fields)
        if unknown:
            raise serializers.ValidationError({k: "unknown field" for k in sorted(unknown)})
        return attrs


class ScenarioCommandSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=[Status.INIT_SHUTDOWN, Status.INIT_STARTUP])


class ScenarioSerializer(serializers.ModelSerializer):
    class Meta:
        model = Scenario
        fields = (
            "id",
            "name",
            "source",
            "params",
            "status",
            "created_at",
            "updated_at",
            "started_at",
            "runner",
            "heartbeat_at",
            "frames_processed",
            "frames_dropped",
            "fps",
            "restarts",
            "stop_reason",
            "error",
            "epoch",
        )
        read_only_fields = fields
