"""Agent sessions and what they leave behind: the gapless transcript, the checkpoint, and the cost of every call.

`ModelPrice` and `AgentCost` live here rather than in `learning`: the agent loop writes one cost row per LLM
call, and `agents` must not import `learning` (imports flow core ← projects ← agents ← …). The learning app
aggregates and forecasts from these rows.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.core.models import BaseModel, in_choices
from apps.core.redaction import redact_value
from apps.projects.models import Project, Task


class SessionKind(models.TextChoices):
    PLANNING = "planning"
    CODING = "coding"
    REVIEW = "review"
    VERIFY = "verify"


class SessionStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    PAUSED = "paused"
    CANCELLED = "cancelled"


S = SessionStatus
# The only legal session moves (`services.session_transition` consults this table). A running session whose
# worker died stays `running` and is taken over by a new lease owner; `running → queued` is the reaper's requeue.
SESSION_TRANSITIONS: dict[str, frozenset[str]] = {
    S.QUEUED: frozenset({S.RUNNING, S.CANCELLED, S.FAILED}),
    S.RUNNING: frozenset({S.COMPLETED, S.FAILED, S.PAUSED, S.CANCELLED, S.QUEUED}),
    S.PAUSED: frozenset({S.QUEUED, S.CANCELLED, S.FAILED}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}
FINISHED_STATUSES = frozenset({S.COMPLETED, S.FAILED, S.CANCELLED})
del S


def lease_cutoff() -> datetime:
    """Heartbeats older than this have expired: their session may be taken over by another worker."""
    return timezone.now() - timedelta(seconds=settings.SESSION_LEASE_SECONDS)


class AgentSession(BaseModel):
    Kind = SessionKind
    Status = SessionStatus

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="sessions")
    task = models.ForeignKey(Task, on_delete=models.CASCADE, null=True, blank=True, related_name="sessions")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.CODING)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    model = models.CharField(max_length=100, help_text="The model asked for (the replay model stands in for it).")
    provider = models.CharField(max_length=16, default="anthropic", help_text="anthropic or replay")
    model_tier = models.CharField(max_length=8, blank=True, help_text="haiku, sonnet or opus, as recommended.")
    model_reason = models.TextField(blank=True, help_text="Why this model: complexity, history, override, budget.")
    task_type = models.CharField(max_length=16, blank=True, help_text="The task's domain as classified at start.")
    workdir = models.CharField(max_length=1024, blank=True, help_text="Directory the agent's tools are confined to.")
    turns = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    cache_read_tokens = models.PositiveBigIntegerField(default=0)
    cache_write_tokens = models.PositiveBigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    last_seq = models.PositiveIntegerField(default=0, help_text="Sequence number of the latest event.")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=200, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveBigIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0, help_text="How many times a worker has run this session.")
    cancel_requested = models.BooleanField(default=False)
    pause_requested = models.CharField(max_length=300, blank=True,
                                       help_text="Who asked to pause and why; the session pauses before its next call.")
    stop_reason = models.CharField(max_length=32, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created"]
        constraints = [
            models.CheckConstraint(condition=in_choices("status", SessionStatus), name="session_status_valid"),
            models.CheckConstraint(condition=in_choices("kind", SessionKind), name="session_kind_valid"),
            models.CheckConstraint(
                condition=Q(kind="planning") | Q(task__isnull=False), name="session_task_unless_planning"
            ),
            models.CheckConstraint(
                condition=~Q(status__in=["completed", "failed", "cancelled"]) | Q(ended_at__isnull=False),
                name="session_finished_has_ended_at",
            ),
        ]
        indexes = [
            models.Index(fields=["project", "status"], name="session_project_status"),
            models.Index(fields=["status", "heartbeat_at"], name="session_status_heartbeat"),
        ]

    def __str__(self) -> str:
        return f"session {self.pk} ({self.kind}, {self.status})"

    @property
    def model_label(self) -> str:
        """How the model is shown everywhere: the replay model never passes for a real one."""
        if self.provider == "replay":
            return f"offline replay model (standing in for {self.model})"
        return self.model

    @property
    def lease_live(self) -> bool:
        return self.heartbeat_at is not None and self.heartbeat_at >= lease_cutoff()

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES


class SessionEvent(models.Model):
    """One block of the transcript. Append-only; `seq` is 1, 2, 3… per session with no gaps."""

    session = models.ForeignKey(AgentSession, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=24)
    payload = models.JSONField(default=dict)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["session", "seq"]
        constraints = [models.UniqueConstraint(fields=["session", "seq"], name="event_seq_unique_in_session")]

    def __str__(self) -> str:
        return f"{self.session_id}#{self.seq} {self.type}"

    @property
    def payload_shown(self) -> dict:
        """The payload as pages, the API and exports show it: masked again, so rows stored before a pattern
        existed (or before a value was known to be secret) do not show it either."""
        return redact_value(self.payload) if isinstance(self.payload, dict) else {}


class Checkpoint(BaseModel):
    """The conversation after the last completed turn: enough to continue it on another worker."""

    session = models.OneToOneField(AgentSession, on_delete=models.CASCADE, related_name="checkpoint")
    turn = models.PositiveIntegerField(default=0)
    event_seq = models.PositiveIntegerField(default=0, help_text="Last event included in this checkpoint.")
    messages = models.JSONField(default=list)
    step = models.JSONField(default=dict, help_text="The last completed step (tool calls of the turn, state).")

    def __str__(self) -> str:
        return f"checkpoint of session {self.session_id} at turn {self.turn}"


class ModelPrice(BaseModel):
    """Per-million-token rates of one model from a date on. A new row for a new date never rewrites old costs:
    each `AgentCost` keeps the price row and the dollars computed when the call was made."""

    class Tier(models.TextChoices):
        HAIKU = "haiku"
        SONNET = "sonnet"
        OPUS = "opus"

    model = models.CharField(max_length=100)
    tier = models.CharField(max_length=8, choices=Tier.choices)
    effective_from = models.DateField()
    input_per_mtok = models.DecimalField(max_digits=10, decimal_places=4)
    output_per_mtok = models.DecimalField(max_digits=10, decimal_places=4)
    cache_write_5m_per_mtok = models.DecimalField(max_digits=10, decimal_places=4)
    cache_write_1h_per_mtok = models.DecimalField(max_digits=10, decimal_places=4)
    cache_read_per_mtok = models.DecimalField(max_digits=10, decimal_places=4)
    long_prompt_threshold = models.PositiveIntegerField(
        null=True, blank=True, help_text="Prompts longer than this many tokens are billed at the long rates below."
    )
    long_input_per_mtok = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    long_output_per_mtok = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    long_cache_write_5m_per_mtok = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    long_cache_write_1h_per_mtok = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    long_cache_read_per_mtok = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    legacy = models.BooleanField(default=False)

    class Meta:
        ordering = ["model", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["model", "effective_from"], name="price_unique_per_date"),
            models.CheckConstraint(
                condition=Q(long_prompt_threshold__isnull=True)
                | Q(long_input_per_mtok__isnull=False, long_output_per_mtok__isnull=False,
                    long_cache_write_5m_per_mtok__isnull=False, long_cache_write_1h_per_mtok__isnull=False,
                    long_cache_read_per_mtok__isnull=False),
                name="price_long_tier_complete",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model} from {self.effective_from}: ${self.input_per_mtok}/${self.output_per_mtok} per MTok"


class AgentCost(models.Model):
    """One LLM call: its tokens, the price row used and the dollars, fixed when the call was made."""

    session = models.ForeignKey(AgentSession, on_delete=models.CASCADE, related_name="costs")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="costs")
    task = models.ForeignKey(Task, on_delete=models.SET_NULL, null=True, blank=True, related_name="costs")
    price = models.ForeignKey(ModelPrice, on_delete=models.PROTECT, null=True, blank=True, related_name="costs")
    model = models.CharField(max_length=100)
    simulated = models.BooleanField(default=False, help_text="Played by the offline replay model: nothing charged.")
    turn = models.PositiveIntegerField()
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    cache_read_tokens = models.PositiveBigIntegerField(default=0)
    cache_write_tokens = models.PositiveBigIntegerField(default=0)
    cache_write_1h_tokens = models.PositiveBigIntegerField(default=0)
    long_prompt = models.BooleanField(default=False)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    latency_ms = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created"]
        indexes = [
            models.Index(fields=["project", "created"], name="cost_project_created"),
            models.Index(fields=["model"], name="cost_model"),
        ]

    def __str__(self) -> str:
        return f"{self.model} turn {self.turn}: ${self.cost_usd}"
