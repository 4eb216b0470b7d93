"""Writing interventions: opening a pause, resolving it (which continues the session), auditing every step,
and the notification preferences."""

from __future__ import annotations

import logging
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.agents.models import AgentSession
from apps.core.errors import ConflictError, ValidationError, YokeFlowError
from apps.core.jobs import enqueue
from apps.interventions.models import InterventionAction, NotificationPreference, PausedSession, PauseType
from apps.interventions.signals import pause_resolved
from apps.projects.models import Project

log = logging.getLogger(__name__)

Action = InterventionAction


def action_record(*, pause: PausedSession | None = None, project: Project | None = None, action_type: str,
                  status: str, details: dict[str, Any] | None = None) -> InterventionAction:
    """One audit row. `details` must never hold a secret: callers mask URLs and tokens first."""
    project_id = pause.project_id if pause is not None else getattr(project, "pk", None)
    return InterventionAction.objects.create(pause=pause, project_id=project_id, action_type=action_type,
                                             action_status=status, action_details=details or {})


def _task_description(session: AgentSession) -> str:
    task = session.task
    if task is None:
        return f"{session.kind} session"
    return f"{task.key}: {task.title}\n\n{task.description}".strip()[:4000]


def pause_open(*, session: AgentSession, pause_type: str, reason: str, blocker_info: dict | None = None,
               retry_stats: dict | None = None, can_auto_resume: bool = False,
               provider_account: str = "") -> PausedSession:
    """Record that `session` paused and why; then (after commit) try a safe recovery and notify people.

    Idempotent: a session has at most one open pause (the database refuses a second), so a repeated call (a
    redelivered job) returns the open one.
    """
    if pause_type not in PauseType.values:
        raise ValidationError(f"pause_type: {pause_type!r} is not one of {', '.join(PauseType.values)}",
                              code="invalid_fields", details={"fields": {"pause_type": ["unknown type"]}})
    existing = PausedSession.objects.filter(session=session, resolved=False).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            pause = PausedSession.objects.create(
                session=session, project_id=session.project_id, pause_type=pause_type, pause_reason=reason[:4000],
                blocker_info=blocker_info or {}, retry_stats=retry_stats or {}, current_task_id=session.task_id,
                current_task_description=_task_description(session), can_auto_resume=can_auto_resume,
                provider_account=provider_account)
            action_record(pause=pause, action_type=Action.Type.PAUSED, status=Action.Status.OK,
                          details={"type": pause_type, "reason": reason[:500], "session": session.pk})
            enqueue("apps.interventions.jobs.pause_opened", pause.pk)
    except IntegrityError:  # another process opened it between the check and the insert
        return PausedSession.objects.get(session=session, resolved=False)
    log.info("session %s paused (%s): %s", session.pk, pause_type, reason[:200])
    return pause


def pause_resolve(*, pause: PausedSession, by: str, notes: str = "") -> PausedSession:
    """Resolve the pause and continue its session from the checkpoint with `notes` as the resume message.

    Resolving twice is refused with who resolved it and when. The continuation is queued in the same transaction
    (through the `pause_resolved` signal): if it cannot be queued, the pause stays open.
    """
    by = (by or "").strip()
    if not by:
        raise ValidationError("resolved_by: say who resolves the pause", code="invalid_fields",
                              details={"fields": {"resolved_by": ["required"]}})
    if not pause_resolved.has_listeners(PausedSession):
        raise NotImplementedError("no runner listens to pause_resolved: install apps.orchestration")
    try:
        with transaction.atomic():
            locked = PausedSession.objects.select_for_update().select_related("session", "project").get(pk=pause.pk)
            _check_open(locked)
            _mark_resolved(locked, by=by, notes=notes, continued=True)
            pause_resolved.send(sender=PausedSession, pause=locked, by=locked.resolved_by,
                                notes=locked.resolution_notes)
    except YokeFlowError as exc:
        action_record(pause=pause, action_type=Action.Type.RESUME_REFUSED, status=Action.Status.REFUSED,
                      details={"by": by[:150], "error": exc.code, "message": exc.message[:500]})
        raise
    log.info("pause %s resolved by %s", pause.pk, by)
    return locked


def _mark_resolved(pause: PausedSession, *, by: str, notes: str, continued: bool) -> None:
    """Write the resolution and its audit row (the caller holds the row lock)."""
    pause.resolved, pause.resolved_at = True, timezone.now()
    pause.resolved_by, pause.resolution_notes = by[:150], notes.strip()
    pause.save(update_fields=["resolved", "resolved_at", "resolved_by", "resolution_notes", "updated"])
    action_record(pause=pause, action_type=Action.Type.RESUMED,
                  status=Action.Status.OK if continued else Action.Status.SKIPPED,
                  details={"by": pause.resolved_by, "notes": pause.resolution_notes[:500], "continued": continued})


def _check_open(pause: PausedSession) -> None:
    if pause.resolved:
        when = timezone.localtime(pause.resolved_at).strftime("%Y-%m-%d %H:%M:%S")
        raise ConflictError(f"pause #{pause.pk} was already resolved by {pause.resolved_by} at {when}; "
                            "a pause is resumed once", code="already_resolved", recoverable=False)


def pause_followup(*, pause: PausedSession) -> None:
    """After a pause is committed: try its safe automatic recovery; a pause that may resume by itself and whose
    recovery worked continues at once; otherwise people are told. Nothing here can undo the pause."""
    # Imported here: both modules record their actions through this one.
    from apps.interventions.notifications import notify_pause
    from apps.interventions.recovery import recovery_attempt

    pause.refresh_from_db()
    if pause.resolved:
        return
    if pause.pause_type in (PauseType.RATE_LIMIT, PauseType.CIRCUIT_OPEN):
        notify_pause(pause=pause)  # holds resume by themselves; notify_on_rate_limit is off by default
        return
    action = recovery_attempt(pause=pause) if pause.blocker_info.get("recovery") else None
    if action is not None and action.action_status == Action.Status.OK and pause.can_auto_resume:
        what = action.action_details.get("summary") or action.action_details.get("action", "a recovery action")
        try:
            pause_resolve(pause=pause, by="automatic recovery",
                          notes=f"YokeFlow fixed the blocker automatically ({what}). Run the command again.")
            return
        except YokeFlowError as exc:  # recorded as resume_refused; a person takes it from here
            log.warning("pause %s: automatic resume refused: %s", pause.pk, exc.message)
    notify_pause(pause=pause)



PREFERENCE_FIELDS = frozenset({
    "webhook_enabled", "webhook_url", "webhook_format", "email_enabled", "email_addresses", "sms_enabled",
    "sms_numbers", "twilio_account_sid", "twilio_auth_token", "twilio_from_number", "notify_on_retry_limit",
    "notify_on_critical_error", "notify_on_timeout", "notify_on_manual_pause", "notify_on_budget",
    "notify_on_merge_conflict", "notify_on_rate_limit", "min_notification_interval"})


def preference_update(*, project: Project, changes: dict[str, Any]) -> NotificationPreference:
    """Create or change the project's notification preferences; fields not given keep their value.

    An enabled channel needs its targets (a webhook URL, addresses, numbers), checked on the result."""
    unknown = set(changes) - PREFERENCE_FIELDS
    if unknown:
        raise ValidationError(f"unknown fields: {', '.join(sorted(unknown))}", code="invalid_fields",
                              details={"fields": {name: ["unknown field"] for name in sorted(unknown)}})
    with transaction.atomic():
        pref = NotificationPreference.objects.select_for_update().filter(project=project).first() \
            or NotificationPreference(project=project)
        for name, value in changes.items():
            setattr(pref, name, value)
        preference_check(pref)
        pref.save()
    log.info("notification preferences of %s changed: %s", project.slug, ", ".join(sorted(changes)))
    return pref


def preference_check(pref: NotificationPreference) -> None:
    missing = {}
    if pref.webhook_enabled and not pref.webhook_url:
        missing["webhook_url"] = ["required when webhook_enabled"]
    if pref.email_enabled and not pref.email_addresses:
        missing["email_addresses"] = ["at least one address when email_enabled"]
    if pref.sms_enabled and not pref.sms_numbers:
        missing["sms_numbers"] = ["at least one number when sms_enabled"]
    if missing:
        raise ValidationError(f"{', '.join(missing)}: missing for an enabled channel", code="invalid_fields",
                              details={"fields": missing})


def pauses_close(*, session: AgentSession, by: str, notes: str) -> int:
    """Close the session's open pause without continuing it (the session was cancelled); returns how many."""
    with transaction.atomic():
        open_pauses = list(PausedSession.objects.select_for_update().filter(session=session, resolved=False))
        for pause in open_pauses:
            _mark_resolved(pause, by=by, notes=notes, continued=False)
    return len(open_pauses)
