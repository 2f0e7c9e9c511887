"""Scenarios, their transactional outbox and their predictions.

Status changes happen only through the FSM transitions below, and only from ``services``,
inside a transaction that holds the scenario's row lock and writes the outbox row.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django_fsm import FSMField, transition

# A scenario's primary key as callers hold it: the UUID, or its text (a task's argument).
ScenarioId = uuid.UUID | str


class Status(models.TextChoices):
    INIT_STARTUP = "init_startup"
    IN_STARTUP_PROCESSING = "in_startup_processing"
    ACTIVE = "active"
    INIT_SHUTDOWN = "init_shutdown"
    IN_SHUTDOWN_PROCESSING = "in_shutdown_processing"
    INACTIVE = "inactive"


class StopReason(models.TextChoices):
    REQUESTED = "requested"
    END_OF_STREAM = "end_of_stream"
    ERROR = "error"


RUNNING_STATUSES = (Status.IN_STARTUP_PROCESSING, Status.ACTIVE)
STARTING_STATUSES = (Status.INIT_STARTUP, Status.IN_STARTUP_PROCESSING, Status.ACTIVE)
# A stop is under way: the runner, if any, is flushing and leaving.
SHUTTING_DOWN_STATUSES = (Status.INIT_SHUTDOWN, Status.IN_SHUTDOWN_PROCESSING)
STOPPING_STATUSES = (*SHUTTING_DOWN_STATUSES, Status.INACTIVE)


class Scenario(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: scenario_owner_list_idx (owner, created_at, id) serves every lookup
    # by owner, and a second, smaller one would tempt the planner to read all of an owner's
    # rows for a name filter instead of the name's trigrams.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="scenarios",
        db_index=False,
    )
    name = models.CharField(max_length=200, blank=True, default="")
    source = models.CharField(max_length=2048)
    params = models.JSONField(default=dict, blank=True)
    status = FSMField(default=Status.INIT_STARTUP, choices=Status.choices, db_index=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)

    # Grows with every (re)start; runners carry it and every write they make is fenced by it.
    epoch = models.PositiveIntegerField(default=1)
    runner = models.CharField(max_length=255, null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # A runner must have sent a heartbeat by then, or the watchdog takes over.
    deadline_at = models.DateTimeField(null=True, blank=True)
    frames_processed = models.PositiveBigIntegerField(default=0)
    frames_dropped = models.PositiveBigIntegerField(default=0)
    # Frames [0, next_frame) have been read and their predictions published; a restart of a
    # file source resumes here.
    next_frame = models.PositiveBigIntegerField(default=0)
    # Frames in a file source that does not loop; None for live and looping sources.
    frames_total = models.PositiveBigIntegerField(null=True, blank=True)
    fps = models.FloatField(default=0.0)
    restarts = models.PositiveIntegerField(default=0)
    # Restarts in a row without the runner getting anywhere; bounded by MISIS_MAX_RESTARTS.
    failed_restarts = models.PositiveIntegerField(default=0)
    # Live sources only: whether the runner has the stream now, and how often it reopened it.
    stream_state = models.CharField(max_length=16, null=True, blank=True)
    reconnects = models.PositiveIntegerField(default=0)
    last_frame_at = models.DateTimeField(null=True, blank=True)
    stream_error = models.TextField(null=True, blank=True)
    stop_reason = models.CharField(max_length=32, choices=StopReason.choices, null=True, blank=True)
    error = models.TextField(null=True, blank=True)
    # Analytics (analytics/): the tracker and zone state as of frame ``next_frame``, saved
    # with every publish so that a runner that takes over resumes it; the live counts; the
    # number of events so far (the next event's seq is one more).
    analytics_state = models.BinaryField(null=True, blank=True, editable=False)
    counts = models.JSONField(default=dict, blank=True)
    events_total = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ("-created_at",)
        indexes = [
            models.Index(fields=("status", "deadline_at"), name="scenario_watchdog_idx"),
            # GET /scenario/ (selectors.scenario_page): newest first, by owner or for staff,
            # with or without a status; each is read in order and stops after a page.
            models.Index(fields=("owner", "-created_at", "-id"), name="scenario_owner_list_idx"),
            models.Index(
                fields=("owner", "status", "-created_at", "-id"), name="scenario_owner_status_idx"
            ),
            models.Index(fields=("status", "-created_at", "-id"), name="scenario_status_list_idx"),
            models.Index(fields=("-created_at", "-id"), name="scenario_list_idx"),
            # ?name= is name ILIKE '%…%': the trigrams of the name serve any substring.
            GinIndex(fields=["name"], opclasses=["gin_trgm_ops"], name="scenario_name_trgm_idx"),
        ]

    def __str__(self) -> str:
        from sources.redact import redact

        return f"{self.name or redact(self.source)} ({self.id})"

    @property
    def progress(self) -> float | None:
        """How far through a (non-looping) file source: 0..1; None when it has no end."""
        if self.stop_reason == StopReason.END_OF_STREAM:
            return 1.0
        if not self.frames_total:
            return None
        return round(min(1.0, self.next_frame / self.frames_total), 4)

    # --- transitions: call only from scenarios.services -----------------------------------
    @transition(field=status, source=Status.INIT_STARTUP, target=Status.IN_STARTUP_PROCESSING)
    def begin_startup(self) -> None:
        pass

    @transition(field=status, source=Status.IN_STARTUP_PROCESSING, target=Status.ACTIVE)
    def activate(self) -> None:
        pass

    @transition(field=status, source=list(STARTING_STATUSES), target=Status.INIT_SHUTDOWN)
    def request_shutdown(self) -> None:
        pass

    @transition(field=status, source=Status.INIT_SHUTDOWN, target=Status.IN_SHUTDOWN_PROCESSING)
    def begin_shutdown(self) -> None:
        pass

    @transition(field=status, source=Status.IN_SHUTDOWN_PROCESSING, target=Status.INACTIVE)
    def finish_shutdown(self) -> None:
        pass

    @transition(field=status, source=Status.INACTIVE, target=Status.INIT_STARTUP)
    def request_startup(self) -> None:
        pass


class OutboxKind(models.TextChoices):
    START = "start"  # send the runner task for (scenario, epoch)
    STOP = "stop"  # tell the runner of (scenario, epoch) to stop


class OutboxMessage(models.Model):
    """A command written in the same transaction as the status change it belongs to."""

    scenario = models.ForeignKey(Scenario, on_delete=models.CASCADE, related_name="outbox")
    kind = models.CharField(max_length=16, choices=OutboxKind.choices)
    epoch = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    # Not sent before this moment (restart backoff).
    available_at = models.DateTimeField()
    dispatched_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ("id",)
        indexes = [
            models.Index(
                fields=("available_at",),
                name="outbox_pending_idx",
                condition=models.Q(dispatched_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.scenario_id} epoch {self.epoch}"


# The fields of one result, in the API's order: the runner's PredictionRow, what it writes, the
# page SQL (selectors) and PredictionSerializer all carry exactly these.
PREDICTION_FIELDS = (
    "frame_index",
    "pts",
    "captured_at",
    "width",
    "height",
    "inference_ms",
    "boxes",
)


class Prediction(models.Model):
    """One analysed frame. ``(scenario, frame_index)`` is unique: a frame is published once."""

    id = models.BigAutoField(primary_key=True)
    scenario = models.ForeignKey(Scenario, on_delete=models.CASCADE, related_name="predictions")
    frame_index = models.PositiveBigIntegerField()
    epoch = models.PositiveIntegerField()
    pts = models.FloatField()
    captured_at = models.DateTimeField()
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    inference_ms = models.FloatField()
    boxes = models.JSONField(default=list)

    class Meta:
        ordering = ("scenario", "frame_index")
        constraints = [
            # Also the index behind the ?after= cursor of GET /prediction/<id>/.
            models.UniqueConstraint(
                fields=("scenario", "frame_index"), name="prediction_scenario_frame_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.scenario_id} frame {self.frame_index}"


class EventType(models.TextChoices):
    ZONE_ENTER = "zone_enter"
    ZONE_EXIT = "zone_exit"
    ZONE_DWELL = "zone_dwell"
    LINE_CROSS = "line_cross"


class Delivery(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class Event(models.Model):
    """What a track did in a zone or at a line, written in the fenced transaction of its
    frame's prediction. ``(scenario, seq)`` is unique: seq counts from 1 without gaps.

    The row is also the webhook's outbox: ``webhook`` is ``pending`` until a delivery task
    (scenarios/tasks.py) gets a 2xx, or ``failed`` after MISIS_WEBHOOK_GIVE_UP seconds.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    scenario = models.ForeignKey(Scenario, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveBigIntegerField()
    epoch = models.PositiveIntegerField()
    type = models.CharField(max_length=16, choices=EventType.choices)
    zone = models.CharField(max_length=64, null=True, blank=True)
    line = models.CharField(max_length=64, null=True, blank=True)
    direction = models.CharField(max_length=3, null=True, blank=True)
    track_id = models.PositiveBigIntegerField()
    label = models.CharField(max_length=100)
    confidence = models.FloatField()
    frame_index = models.PositiveBigIntegerField()
    pts = models.FloatField()
    captured_at = models.DateTimeField()
    box = models.JSONField()
    snapshot = models.CharField(max_length=255, blank=True, default="")
    webhook = models.CharField(max_length=16, choices=Delivery.choices, null=True, blank=True)
    webhook_attempts = models.PositiveIntegerField(default=0)
    webhook_next_at = models.DateTimeField(null=True, blank=True)
    webhook_error = models.TextField(null=True, blank=True)
    mqtt = models.CharField(max_length=16, choices=Delivery.choices, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("scenario", "seq")
        constraints = [
            # Also the index behind the ?after= cursor of GET /event/<id>/.
            models.UniqueConstraint(fields=("scenario", "seq"), name="event_scenario_seq_uniq")
        ]
        indexes = [
            models.Index(
                fields=("webhook_next_at",),
                name="event_webhook_pending_idx",
                condition=models.Q(webhook="pending"),
            ),
            models.Index(
                fields=("created_at",),
                name="event_mqtt_pending_idx",
                condition=models.Q(mqtt="pending"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.scenario_id} event {self.seq} {self.type}"
