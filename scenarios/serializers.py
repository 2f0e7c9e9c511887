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
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - parsing the port is the check (range, digits)
    except ValueError as exc:
        raise serializers.ValidationError(f"not a valid URL: {exc}") from None
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
    progress = serializers.FloatField(read_only=True, allow_null=True)

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
            "progress",
        )
        read_only_fields = fields


# --- documentation only ------------------------------------------------------------------------
# The shapes below are never used to read or write data: they describe, for the OpenAPI schema,
# bodies that the views build by other means (the prediction page comes rendered from PostgreSQL,
# errors come from DRF and misis.exceptions).


class BoxSerializer(serializers.Serializer):
    label = serializers.CharField(help_text="Class name of the detected object.")
    class_id = serializers.IntegerField(help_text="Class index in the detector's label set.")
    confidence = serializers.FloatField(min_value=0, max_value=1)
    x1 = serializers.FloatField(help_text="Left edge, in pixels of the source frame.")
    y1 = serializers.FloatField(help_text="Top edge, in pixels of the source frame.")
    x2 = serializers.FloatField(help_text="Right edge, in pixels of the source frame.")
    y2 = serializers.FloatField(help_text="Bottom edge, in pixels of the source frame.")


class PredictionSerializer(serializers.Serializer):
    frame_index = serializers.IntegerField(
        min_value=0,
        help_text="0-based index of the frame among all frames read from the source since the"
        " scenario was created, whether or not each was analysed.",
    )
    pts = serializers.FloatField(help_text="Presentation time of the frame in the source, seconds.")
    captured_at = serializers.DateTimeField(help_text="When the frame was read from the source.")
    width = serializers.IntegerField(min_value=0, help_text="Source frame width, pixels.")
    height = serializers.IntegerField(min_value=0, help_text="Source frame height, pixels.")
    inference_ms = serializers.FloatField(help_text="Time the detector took on this frame.")
    boxes = BoxSerializer(many=True)


class PredictionPageSerializer(serializers.Serializer):
    scenario_id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=Status.choices)
    next = serializers.URLField(
        allow_null=True,
        help_text="URL of the next page (a full page was returned), or null when this page was"
        " the last one available so far.",
    )
    results = PredictionSerializer(many=True, help_text="Ordered by frame_index, ascending.")


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


class ConflictSerializer(serializers.Serializer):
    detail = serializers.CharField()
    status = serializers.ChoiceField(
        choices=Status.choices, allow_null=True, help_text="The scenario's current status."
    )
