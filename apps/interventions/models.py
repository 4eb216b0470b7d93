"""Interventions: sessions paused for a person (or an automatic recovery), what was done about them, who is told,
and provider accounts on hold.

A pause is written when a session stops itself (a detector's verdict, the agent asking for help, a cap) or when
finished work cannot merge; it is resolved once, by a person or automatically, and the resolution continues the
session from its checkpoint with the notes as its resume message.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.agents.models import AgentSession
from apps.core.crypto import EncryptedTextField, mask
from apps.core.models import BaseModel, in_choices
from apps.projects.models import Project, Task


class PauseType(models.TextChoices):
    RETRY_LIMIT = "retry_limit", "same failing command repeated"
    CRITICAL_ERROR = "critical_error", "critical error"
    BUDGET = "budget", "budget reached"
    TURN_CAP = "turn_cap", "turn cap reached"
    CIRCUIT_OPEN = "circuit_open", "provider unavailable (circuit open)"
    RATE_LIMIT = "rate_limit", "provider rate limit (held)"
    HELP_REQUESTED = "help_requested", "the agent asked for help"
    MERGE_CONFLICT = "merge_conflict", "merge conflict"
    MANUAL = "manual", "paused by a person"
    ATTEMPTS_EXHAUSTED = "attempts_exhausted", "every attempt failed"
    TIMEOUT = "timeout", "session time limit reached"


# Which `notify_on_*` switch of the preferences covers each pause type.
NOTIFY_SWITCH = {
    PauseType.RETRY_LIMIT: "notify_on_retry_limit",
    PauseType.CRITICAL_ERROR: "notify_on_critical_error",
    PauseType.TURN_CAP: "notify_on_timeout",
    PauseType.BUDGET: "notify_on_budget",
    PauseType.CIRCUIT_OPEN: "notify_on_critical_error",
    PauseType.RATE_LIMIT: "notify_on_rate_limit",
    PauseType.HELP_REQUESTED: "notify_on_manual_pause",
    PauseType.MANUAL: "notify_on_manual_pause",
    PauseType.MERGE_CONFLICT: "notify_on_merge_conflict",
    PauseType.ATTEMPTS_EXHAUSTED: "notify_on_critical_error",
    PauseType.TIMEOUT: "notify_on_timeout",
}


# A pause is open until a person (or an automatic recovery) resolves it, once. Its state is the `resolved` flag;
# `services` checks this table under the pause's row lock before resolving.
PAUSE_OPEN, PAUSE_RESOLVED = "open", "resolved"
PAUSE_TRANSITIONS: dict[str, frozenset[str]] = {PAUSE_OPEN: frozenset({PAUSE_RESOLVED}), PAUSE_RESOLVED: frozenset()}


class PausedSession(BaseModel):
    Type = PauseType
    session = models.ForeignKey(AgentSession, on_delete=models.CASCADE, related_name="pauses")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="pauses")
    pause_type = models.CharField(max_length=20, choices=PauseType.choices)
    pause_reason = models.TextField()
    # What blocked: the detector's findings (pattern, command, output tail, files, provider reset time …).
    blocker_info = models.JSONField(default=dict, blank=True)
    # The retry tracker's counts at the pause: {signature: {"count": n, "command": …, "last_error": …}}.
    retry_stats = models.JSONField(default=dict, blank=True)
    current_task = models.ForeignKey(Task, on_delete=models.SET_NULL, null=True, blank=True, related_name="pauses")
    current_task_description = models.TextField(blank=True)
    # For holds on a provider account: which account (a fingerprint, never the key) the pause waits on.
    provider_account = models.CharField(max_length=64, blank=True, db_index=True)
    paused_at = models.DateTimeField(default=timezone.now, db_index=True)
    resolved = models.BooleanField(default=False)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=150, blank=True)
    resolution_notes = models.TextField(blank=True)
    can_auto_resume = models.BooleanField(default=False)

    class Meta:
        ordering = ["-paused_at"]
        constraints = [
            models.CheckConstraint(condition=in_choices("pause_type", PauseType), name="pause_type_valid"),
            # At most one open pause per session: resolving twice, or pausing a paused session, is refused.
            models.UniqueConstraint(fields=["session"], condition=Q(resolved=False), name="pause_one_open_per_session"),
            models.CheckConstraint(condition=Q(resolved=False, resolved_at__isnull=True)
                                   | Q(resolved=True, resolved_at__isnull=False), name="pause_resolved_has_time"),
        ]
        indexes = [models.Index(fields=["project", "resolved"], name="pause_project_resolved")]

    def __str__(self) -> str:
        return f"pause #{self.pk} of session {self.session_id} ({self.pause_type})"


class ActionType(models.TextChoices):
    PAUSED = "paused"
    NOTIFICATION = "notification"
    RECOVERY = "recovery"
    RESUMED = "resumed"
    RESUME_REFUSED = "resume_refused"
    HOLD_OPENED = "hold_opened"
    HOLD_RELEASED = "hold_released"
    BUDGET_APPROVED = "budget_approved"


class ActionStatus(models.TextChoices):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"
    REFUSED = "refused"


class InterventionAction(models.Model):
    """The audit trail: every pause, notification attempt, recovery attempt and resume, with its outcome."""

    Type = ActionType
    Status = ActionStatus
    pause = models.ForeignKey(PausedSession, on_delete=models.CASCADE, null=True, blank=True, related_name="actions")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, null=True, blank=True,
                                related_name="intervention_actions")
    action_type = models.CharField(max_length=20, choices=ActionType.choices)
    action_status = models.CharField(max_length=10, choices=ActionStatus.choices)
    action_details = models.JSONField(default=dict, blank=True)  # never a secret: URLs are masked first
    created = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created", "-pk"]
        constraints = [
            models.CheckConstraint(condition=in_choices("action_type", ActionType), name="action_type_valid"),
            models.CheckConstraint(condition=in_choices("action_status", ActionStatus), name="action_status_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.action_type} {self.action_status}"


class WebhookFormat(models.TextChoices):
    AUTO = "auto", "by URL (Slack, Discord, else generic JSON)"
    SLACK = "slack", "Slack (attachments)"
    DISCORD = "discord", "Discord (embeds)"
    GENERIC = "generic", "generic JSON"


class NotificationPreference(BaseModel):
    """Who is told about a project's pauses, how, and how often. Webhook URLs and SMS credentials are encrypted
    at rest and only ever shown masked."""

    Format = WebhookFormat
    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="notification_preference")
    webhook_enabled = models.BooleanField(default=False)
    webhook_url = EncryptedTextField(blank=True)
    webhook_format = models.CharField(max_length=10, choices=WebhookFormat.choices, default=WebhookFormat.AUTO)
    # The Standard Webhooks signing secret ("whsec_" + base64 key): made when the URL is set or changed, shown once.
    webhook_secret = EncryptedTextField(blank=True)
    email_enabled = models.BooleanField(default=False)
    email_addresses = models.JSONField(default=list, blank=True)
    sms_enabled = models.BooleanField(default=False)
    sms_numbers = models.JSONField(default=list, blank=True)
    # Twilio credentials for this project; empty ones fall back to the TWILIO_* settings.
    twilio_account_sid = EncryptedTextField(blank=True)
    twilio_auth_token = EncryptedTextField(blank=True)
    twilio_from_number = models.CharField(max_length=20, blank=True)
    notify_on_retry_limit = models.BooleanField(default=True)
    notify_on_critical_error = models.BooleanField(default=True)
    notify_on_timeout = models.BooleanField(default=True)
    notify_on_manual_pause = models.BooleanField(default=True)
    notify_on_budget = models.BooleanField(default=True)
    notify_on_merge_conflict = models.BooleanField(default=True)
    notify_on_rate_limit = models.BooleanField(default=False)  # holds resume by themselves
    min_notification_interval = models.PositiveIntegerField(default=300, help_text="seconds between notifications")
    last_notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=in_choices("webhook_format", WebhookFormat),
                                              name="notification_webhook_format_valid")]

    def __str__(self) -> str:
        return f"notifications of {self.project}"

    @property
    def webhook_url_masked(self) -> str:
        return mask(self.webhook_url)

    @property
    def webhook_url_set(self) -> bool:
        return bool(self.webhook_url)

    @property
    def twilio_account_sid_masked(self) -> str:
        return mask(self.twilio_account_sid)

    @property
    def twilio_auth_token_set(self) -> bool:
        return bool(self.twilio_auth_token)

    def wants(self, pause_type: str) -> bool:
        return bool(getattr(self, NOTIFY_SWITCH.get(pause_type, "notify_on_critical_error")))


class HoldKind(models.TextChoices):
    RATE_LIMIT = "rate_limit", "rate limited"
    OVERLOADED = "overloaded", "provider overloaded"
    CIRCUIT_OPEN = "circuit_open", "circuit open after repeated failures"


class ProviderAccount(BaseModel):
    """One provider account (API key + endpoint, stored as a fingerprint), its failure count for the circuit
    breaker and its hold: while `hold_until` is in the future no session on it calls the model and no task is
    started; sessions that were running pause and are continued when the hold ends."""

    HoldKind = HoldKind
    fingerprint = models.CharField(max_length=64, unique=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    hold_kind = models.CharField(max_length=20, choices=HoldKind.choices, blank=True)
    hold_reason = models.TextField(blank=True)
    hold_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"provider account {self.fingerprint}"

    @property
    def held(self) -> bool:
        return self.hold_until is not None and self.hold_until > timezone.now()
