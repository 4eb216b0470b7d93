"""Shared model base, the API token model and the append-only audit log."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.core.errors import YokeFlowError


class BaseModel(models.Model):
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class ApiToken(BaseModel):
    """A per-user bearer token. Only a SHA-256 digest is stored; the token is shown once at creation."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, help_text="First characters of the token, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


def in_choices(field: str, choices: type[models.TextChoices]) -> Q:
    """A check-constraint condition: `field` holds one of `choices` (the database refuses anything else)."""
    return Q(**{f"{field}__in": choices.values})


class AuditAction(models.TextChoices):
    TOKEN_CREATED = "token_created"
    TOKEN_USED = "token_used"
    SESSION_RESUMED = "session_resumed"
    BUDGET_APPROVED = "budget_approved"
    SETTINGS_CHANGED = "settings_changed"
    NOTIFICATIONS_CHANGED = "notifications_changed"
    SESSION_KILLED = "session_killed"
    SESSION_CANCELLED = "session_cancelled"
    RUN_CANCELLED = "run_cancelled"
    SESSION_PAUSED = "session_paused"
    WORKTREE_DISCARDED = "worktree_discarded"
    TASK_CANCELLED = "task_cancelled"
    TASK_RETRIED = "task_retried"
    PROJECT_CREATED = "project_created"
    PROJECT_DELETED = "project_deleted"
    MEMBERSHIP_CHANGED = "membership_changed"
    RUN_STARTED = "run_started"
    PLAN_IMPORTED = "plan_imported"
    WORKTREE_MERGED = "worktree_merged"
    LOGIN_SUCCEEDED = "login_succeeded"
    LOGIN_FAILED = "login_failed"
    LOGIN_LOCKED_OUT = "login_locked_out"
    LOGIN_UNLOCKED = "login_unlocked"
    SECRETS_ROTATED = "secrets_rotated"


class AuditImmutableError(YokeFlowError):
    """An audit event was about to be changed or deleted one by one; the log only grows (old rows are pruned)."""

    code = "audit_append_only"


class AuditEvent(models.Model):
    """Who did what, when, from where: one row per action a person (or the system on their behalf) took.

    Append-only: a row is never changed, and only the retention prune (a queryset delete) removes rows.
    Written by `apps.core.audit.audit_record`, which masks secrets in `details`.
    """

    Action = AuditAction
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=150)
    action = models.CharField(max_length=32, choices=AuditAction.choices)
    target = models.TextField(blank=True)
    # The subject's project by id and slug, not by foreign key: core is the ground floor and refers to no higher
    # app, and a deleted project keeps its log (with the slug it had).
    project_id = models.BigIntegerField(null=True, blank=True, db_column="project_id")
    project_label = models.CharField(max_length=63, blank=True)
    origin = models.CharField(max_length=200, blank=True)
    correlation_id = models.CharField(max_length=64, blank=True, db_index=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created", "-pk"]
        constraints = [models.CheckConstraint(condition=in_choices("action", AuditAction), name="audit_action_valid")]
        indexes = [models.Index(fields=["project_id", "-created"], name="audit_project_created")]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            raise AuditImmutableError(f"audit event #{self.pk} cannot be changed: the audit log is append-only")
        kwargs["force_insert"] = True  # a new row with a reused pk must fail, not overwrite the old event
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AuditImmutableError(f"audit event #{self.pk} cannot be deleted: the audit log is append-only "
                                  "(old events are removed by `manage.py prune`)")
