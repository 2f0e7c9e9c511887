"""Operator pages. Start and stop go through the same services as the API."""

from __future__ import annotations

import contextlib

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from scenarios.models import Event, OutboxMessage, Prediction, Scenario
from scenarios.services import commands
from sources.redact import redact


@admin.register(Scenario)
class ScenarioAdmin(admin.ModelAdmin[Scenario]):
    list_display = (
        "id",
        "name",
        "masked_source",
        "status",
        "runner",
        "heartbeat_age",
        "fps",
        "frames_processed",
        "restarts",
        "epoch",
        "stop_reason",
        "owner",
    )
    list_filter = ("status", "stop_reason")
    # Never `source`: a substring search over it answers "is the password's next letter x?".
    search_fields = ("id", "name", "owner__username", "runner")
    # The stored source may hold a camera password: pages show it masked, never in a form.
    exclude = ("source",)
    readonly_fields = [
        *(f.name for f in Scenario._meta.fields if f.name != "source"),
        "masked_source",
        "latest_predictions",
    ]
    actions = ("start_scenarios", "stop_scenarios")

    @admin.display(description="latest predictions")
    def latest_predictions(self, obj: Scenario) -> str:
        # Not an inline: a scenario can hold millions of rows; show the newest few, read-only.
        rows = Prediction.objects.filter(scenario=obj).order_by("-frame_index")[:20]
        return format_html(
            "<table><tr><th>frame</th><th>pts</th><th>captured</th><th>ms</th>"
            "<th>boxes</th></tr>{}</table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                (
                    (
                        p.frame_index,
                        p.pts,
                        p.captured_at,
                        p.inference_ms,
                        ", ".join(f"{b['label']} {b['confidence']:.2f}" for b in p.boxes),
                    )
                    for p in rows
                ),
            ),
        )

    @admin.display(description="source")
    def masked_source(self, obj: Scenario) -> str:
        return redact(obj.source)

    @admin.display(description="heartbeat age (s)")
    def heartbeat_age(self, obj: Scenario) -> str:
        if obj.heartbeat_at is None:
            return "-"
        return f"{(timezone.now() - obj.heartbeat_at).total_seconds():.1f}"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    # A delete from the admin is the API's delete: the runner fenced out and stopped, the
    # snapshots and Redis keys removed with the rows (not only the rows, as the admin would).
    def delete_model(self, request: HttpRequest, obj: Scenario) -> None:
        with contextlib.suppress(commands.ScenarioGone):  # deleted meanwhile: as wanted
            commands.delete_scenario(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Scenario]) -> None:
        for scenario in queryset.order_by("pk"):
            self.delete_model(request, scenario)

    @admin.action(description="Start selected scenarios")
    def start_scenarios(self, request: HttpRequest, queryset: QuerySet[Scenario]) -> None:
        started = refused = 0
        for pk in queryset.order_by("pk").values_list("pk", flat=True):
            try:
                started += commands.scenario_request_start(scenario_id=pk)[1]
            except (commands.TransitionRefused, commands.QuotaExceeded):
                refused += 1
        self.message_user(request, f"{started} started, {refused} refused", messages.INFO)

    @admin.action(description="Stop selected scenarios")
    def stop_scenarios(self, request: HttpRequest, queryset: QuerySet[Scenario]) -> None:
        stopped = 0
        for pk in queryset.order_by("pk").values_list("pk", flat=True):
            stopped += commands.scenario_request_stop(scenario_id=pk)[1]
        self.message_user(request, f"{stopped} stopping", messages.INFO)


@admin.register(OutboxMessage)
class OutboxAdmin(admin.ModelAdmin[OutboxMessage]):
    list_display = ("id", "scenario", "kind", "epoch", "created_at", "dispatched_at", "attempts")
    list_filter = ("kind",)
    readonly_fields = [f.name for f in OutboxMessage._meta.fields]


@admin.register(Event)
class EventAdmin(admin.ModelAdmin[Event]):
    """Events, read-only: what tracks did in zones and at lines, and their delivery."""

    list_display = (
        "scenario",
        "seq",
        "type",
        "zone",
        "line",
        "direction",
        "track_id",
        "label",
        "frame_index",
        "captured_at",
        "webhook",
        "webhook_attempts",
    )
    list_filter = ("type", "webhook", "mqtt", "zone", "line")
    search_fields = ("scenario__id", "scenario__name", "zone", "line", "label")
    list_select_related = ("scenario",)
    readonly_fields = [f.name for f in Event._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
