"""Input checks and output shapes of the scenario API (the contract in docs/API.md)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from scenarios.analytics_params import masked
from scenarios.models import Scenario, Status
from scenarios.params import ParamsError, params_json_schema, storable_text, validate_params
from scenarios.preview_links import preview_url
from sources.base import SourceError
from sources.redact import redact
from sources.registry import source_class
from sources.selectors import upload_not_found, upload_visible


def validate_source(value: str) -> str:
    """The source, or ValidationError: the rules of its scheme's class (sources/).

    Reachability is not checked here: a camera may be down now and up when the runner opens
    it; an unreachable source ends the scenario ``inactive`` with a readable error instead.
    """
    value = value.strip()
    if not value:
        raise serializers.ValidationError("must not be empty")
    if not storable_text(value) or any(ch in value for ch in "\r\n\t"):
        raise serializers.ValidationError("must not contain NUL, control or surrogate characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - parsing the port is the check (range, digits)
    except ValueError as exc:
        raise serializers.ValidationError(f"not a valid URL: {exc}") from None
    try:
        source_class(value).validate(value)
    except SourceError as exc:
        raise serializers.ValidationError(str(exc)) from None
    return value


class StrictCharField(serializers.CharField):
    """A string, and only a string: DRF would quietly turn 5 into "5"."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


PARAMS_SCHEMA = params_json_schema()


@extend_schema_field(PARAMS_SCHEMA)
class ParamsField(serializers.JSONField):
    """Any JSON to DRF; validate_params says what is allowed."""


class ScenarioCreateSerializer(serializers.Serializer[None]):
    # A declared field (the metaclass moves it into _declared_fields); the DRF stubs take the
    # name for the class attribute Field.source.
    source = StrictCharField(  # type: ignore[assignment]
        max_length=2048,
        trim_whitespace=True,
        allow_blank=False,
        help_text="rtsp(s)://, onvif://, http(s)://, s3:// URL, or a path relative to the video"
        " root (not absolute, no `..`); another scheme, or a path that leaves the root, is a 400.",
    )
    name = StrictCharField(max_length=200, required=False, allow_blank=True, default="")
    params = ParamsField(required=False, default=dict, allow_null=True)

    def validate_source(self, value: str) -> str:
        value = validate_source(value)
        user = getattr(self.context.get("request"), "user", None)  # none: no upload is visible
        if not upload_visible(source=value, user=user):
            raise serializers.ValidationError(upload_not_found(value))
        return value

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


class ScenarioCommandSerializer(serializers.Serializer[None]):
    status = serializers.ChoiceField(choices=[Status.INIT_SHUTDOWN, Status.INIT_STARTUP])


class StreamSerializer(serializers.Serializer[Scenario]):
    state = serializers.CharField(
        source="stream_state", help_text="connected, or reconnecting after the stream dropped out"
    )
    reconnects = serializers.IntegerField(help_text="Times the stream was reopened.")
    last_frame_at = serializers.DateTimeField(allow_null=True)
    error = serializers.CharField(
        source="stream_error", allow_null=True, help_text="Why the last read or reconnect failed."
    )


class ScenarioSerializer(serializers.ModelSerializer[Scenario]):
    progress = serializers.FloatField(read_only=True, allow_null=True)
    # A declared field (the metaclass moves it into _declared_fields); the DRF stubs take the
    # name for the class attribute Field.source.
    source = serializers.SerializerMethodField(  # type: ignore[assignment]
        help_text="The source as given, with its password and secret query values masked."
    )
    stream = serializers.SerializerMethodField(
        help_text="Live sources: whether the runner has the stream now; null for files."
    )
    preview_url = serializers.SerializerMethodField(
        help_text="Path of the scenario's live preview page, signed for this scenario and its"
        " owner: opens in a browser without a token, and expires (MISIS_PREVIEW_LINK_TTL,"
        " an hour by default). Fetch the scenario again for a fresh one."
    )

    params = serializers.SerializerMethodField(
        help_text="The params as given; the webhook secret is write-only (shown as ***)."
    )
    counts = serializers.JSONField(
        read_only=True,
        help_text='Live counts: {"lines": {name: {"in", "out"}}, "zones": {name: {"inside",'
        ' "entered"}}}.',
    )

    def get_source(self, obj: Scenario) -> str:
        return redact(obj.source)

    def get_params(self, obj: Scenario) -> dict[str, Any]:
        return masked(obj.params or {})

    def get_preview_url(self, obj: Scenario) -> str:
        return preview_url(scenario=obj)

    @extend_schema_field(StreamSerializer(allow_null=True))
    def get_stream(self, obj: Scenario) -> dict[str, Any] | None:
        if not obj.stream_state:
            return None
        return StreamSerializer(obj).data

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
            "stream",
            "preview_url",
            "counts",
        )
        read_only_fields = fields


# --- documentation only ------------------------------------------------------------------------
# The shapes below are never used to read or write data: they describe, for the OpenAPI schema,
# bodies that the views build by other means (the prediction page comes rendered from PostgreSQL,
# errors come from DRF and misis.exceptions).


class BoxSerializer(serializers.Serializer[None]):
    # A declared field (the metaclass moves it into _declared_fields); the DRF stubs take the
    # name for the class attribute Field.label.
    label = serializers.CharField(  # type: ignore[assignment]
        help_text="Class name of the detected object."
    )
    class_id = serializers.IntegerField(help_text="Class index in the detector's label set.")
    confidence = serializers.FloatField(min_value=0, max_value=1)
    x1 = serializers.FloatField(help_text="Left edge, in pixels of the source frame.")
    y1 = serializers.FloatField(help_text="Top edge, in pixels of the source frame.")
    x2 = serializers.FloatField(help_text="Right edge, in pixels of the source frame.")
    y2 = serializers.FloatField(help_text="Bottom edge, in pixels of the source frame.")


class PredictionSerializer(serializers.Serializer[None]):
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


class PredictionPageSerializer(serializers.Serializer[None]):
    scenario_id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=Status.choices)
    next = serializers.URLField(
        allow_null=True,
        help_text="URL of the next page (a full page was returned), or null when this page was"
        " the last one available so far.",
    )
    results = PredictionSerializer(many=True, help_text="Ordered by frame_index, ascending.")


class ScenarioPageSerializer(serializers.Serializer[None]):
    next = serializers.URLField(
        allow_null=True,
        help_text="URL of the next page (same filters, with its cursor), or null on the last page.",
    )
    results = ScenarioSerializer(many=True, help_text="Newest first.")


class ErrorSerializer(serializers.Serializer[None]):
    detail = serializers.CharField()


class ConflictSerializer(serializers.Serializer[None]):
    detail = serializers.CharField()
    status = serializers.ChoiceField(
        choices=Status.choices, allow_null=True, help_text="The scenario's current status."
    )


class EventWebhookSerializer(serializers.Serializer[None]):
    state = serializers.ChoiceField(choices=["pending", "delivered", "failed"])
    attempts = serializers.IntegerField()


class EventBoxSerializer(serializers.Serializer[None]):
    x1 = serializers.FloatField()
    y1 = serializers.FloatField()
    x2 = serializers.FloatField()
    y2 = serializers.FloatField()


class EventSerializer(serializers.Serializer[None]):
    id = serializers.UUIDField()
    seq = serializers.IntegerField(help_text="The scenario's events counted from 1, no gaps.")
    type = serializers.ChoiceField(choices=["zone_enter", "zone_exit", "zone_dwell", "line_cross"])
    zone = serializers.CharField(allow_null=True)
    line = serializers.CharField(allow_null=True)
    direction = serializers.ChoiceField(choices=["in", "out"], allow_null=True)
    track_id = serializers.IntegerField()
    label = serializers.CharField()  # type: ignore[assignment]  # a declared field, not Field.label
    confidence = serializers.FloatField()
    frame_index = serializers.IntegerField()
    pts = serializers.FloatField()
    captured_at = serializers.DateTimeField()
    box = EventBoxSerializer()
    snapshot = serializers.URLField(allow_null=True)
    webhook = EventWebhookSerializer(allow_null=True)


class EventPageSerializer(serializers.Serializer[None]):
    scenario_id = serializers.UUIDField()
    next = serializers.URLField(allow_null=True)
    results = EventSerializer(many=True)
