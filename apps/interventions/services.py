"""Writing interventions: opening a pause, resolving it (which continues the session), auditing every step,
and the notification preferences."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.agents.models import AgentSession
from apps.agents.selectors import project_spent
from apps.core.audit import audit_record
from apps.core.errors import ConflictError, ValidationError, YokeFlowError
from apps.core.jobs import enqueue
from apps.core.models import AuditAction
from apps.core.netguard import DestinationRefused, Unresolvable, destination, networks
from apps.interventions.models import (
    PAUSE_OPEN,
    PAUSE_RESOLVED,
    PAUSE_TRANSITIONS,
    InterventionAction,
    NotificationPreference,
    PausedSession,
    PauseType,
)
from apps.interventions.signals import pause_resolved
from apps.interventions.webhooks import webhook_secret_new
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
            _check_budget(locked)
            _mark_resolved(locked, by=by, notes=notes, continued=True)
            pause_resolved.send(sender=PausedSession, pause=locked, by=locked.resolved_by,
                                notes=locked.resolution_notes)
            audit_record(action=AuditAction.SESSION_RESUMED, target=f"session #{locked.session_id}",
                         project=locked.project_id, actor=locked.resolved_by,
                         details={"pause": locked.pk, "pause_type": locked.pause_type,
                                  "notes": locked.resolution_notes})
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
    if PAUSE_RESOLVED not in PAUSE_TRANSITIONS[PAUSE_RESOLVED if pause.resolved else PAUSE_OPEN]:
        when = timezone.localtime(pause.resolved_at).strftime("%Y-%m-%d %H:%M:%S")
        raise ConflictError(f"pause #{pause.pk} was already resolved by {pause.resolved_by} at {when}; "
                            "a pause is resumed once", code="already_resolved", recoverable=False)


def approval_for(shortfall: Decimal) -> Decimal:
    """The whole dollars to suggest approving for a shortfall (at least BUDGET_APPROVE_MIN)."""
    return max(Decimal(settings.BUDGET_APPROVE_MIN), Decimal(math.ceil(shortfall)))


def _check_budget(pause: PausedSession) -> None:
    """A budget pause continues only once the budget covers the call it stopped before."""
    if pause.pause_type != PauseType.BUDGET or pause.project.budget_usd is None:
        return
    spent = project_spent(project=pause.project)
    needed = spent + Decimal(str(pause.blocker_info.get("next_call_worst_usd") or 0))
    if needed > pause.project.budget_usd:
        short = needed - pause.project.budget_usd
        raise ConflictError(
            f"the budget is still short by ${short:.2f} (${spent:.2f} spent of ${pause.project.budget_usd:.2f}); "
            f"approve more budget (e.g. `yokeflow budget {pause.project.slug} --approve "
            f"{approval_for(short)}`)", code="budget_exhausted", recoverable=True,
            details={"short_usd": str(short.quantize(Decimal("0.01")))})


@dataclass(frozen=True)
class BudgetApproval:
    """A budget raise: the new and previous budget, the pauses it continued and those it does not cover yet."""

    budget_usd: Decimal
    previous_budget_usd: Decimal
    approved_usd: Decimal
    spent_usd: Decimal
    resumed: list[int]
    still_paused: list[int]


def budget_approve(*, project: Project, amount: Decimal, by: str, notes: str = "") -> BudgetApproval:
    """Raise the project's budget by `amount` and continue every session paused for budget (those the raise
    covers; the others stay paused and are listed). The raise stands even if no session was waiting."""
    amount = _checked_amount(amount)
    by = (by or "").strip()[:150]
    if not by:
        raise ValidationError("by: say who approves the budget", code="invalid_fields",
                              details={"fields": {"by": ["required"]}})
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        if locked.budget_usd is None:
            raise ConflictError(f"project {locked.slug!r} has no budget, so there is nothing to approve; set "
                                "budget_usd to limit its spending", code="no_budget")
        previous = locked.budget_usd
        locked.budget_usd = previous + amount
        locked.save(update_fields=["budget_usd", "updated"])
        action_record(project=locked, action_type=Action.Type.BUDGET_APPROVED, status=Action.Status.OK, details={
            "by": by, "amount_usd": str(amount), "from_usd": str(previous), "to_usd": str(locked.budget_usd),
            "notes": notes.strip()[:500]})
        resumed, waiting = _resume_budget_pauses(locked, by, f"Budget raised by ${amount} to ${locked.budget_usd} "
                                                 f"by {by}. {notes.strip()}".strip())
        audit_record(action=AuditAction.BUDGET_APPROVED, target=f"project {locked.slug}", project=locked, actor=by,
                     details={"amount_usd": amount, "previous_budget_usd": previous,
                              "budget_usd": locked.budget_usd, "notes": notes.strip()})
    project.budget_usd = locked.budget_usd
    log.info("budget of %s raised by %s to %s by %s", locked.slug, amount, locked.budget_usd, by)
    return BudgetApproval(budget_usd=locked.budget_usd, previous_budget_usd=previous, approved_usd=amount,
                          spent_usd=project_spent(project=locked), resumed=resumed, still_paused=waiting)


def _checked_amount(amount: object) -> Decimal:
    try:
        value = Decimal(str(amount)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        value = None
    if value is None or not value.is_finite() or not Decimal("0.01") <= value <= Decimal("100000"):
        raise ValidationError("amount: give the dollars to add, between 0.01 and 100000", code="invalid_fields",
                              details={"fields": {"amount": ["between 0.01 and 100000 dollars"]}})
    return value


def _resume_budget_pauses(project: Project, by: str, notes: str) -> tuple[list[int], list[int]]:
    resumed, waiting = [], []
    for pause in PausedSession.objects.filter(project=project, resolved=False, pause_type=PauseType.BUDGET):
        try:
            pause_resolve(pause=pause, by=by, notes=notes)
        except ConflictError as exc:
            if exc.code != "budget_exhausted":
                raise
            waiting.append(pause.pk)
        else:
            resumed.append(pause.pk)
    return resumed, waiting


PREFERENCE_FIELDS = frozenset({
    "webhook_enabled", "webhook_url", "webhook_format", "email_enabled", "email_addresses", "sms_enabled",
    "sms_numbers", "twilio_account_sid", "twilio_auth_token", "twilio_from_number", "notify_on_retry_limit",
    "notify_on_critical_error", "notify_on_timeout", "notify_on_manual_pause", "notify_on_budget",
    "notify_on_merge_conflict", "notify_on_rate_limit", "min_notification_interval"})
PREFERENCE_ACTIONS = frozenset({"rotate_webhook_secret"})  # not fields: what to do with them


def preference_update(*, project: Project, changes: dict[str, Any]) -> NotificationPreference:
    """Create or change the project's notification preferences; fields not given keep their value.

    An enabled channel needs its targets (a webhook URL, addresses, numbers), checked on the result."""
    unknown = set(changes) - PREFERENCE_FIELDS - PREFERENCE_ACTIONS
    if unknown:
        raise ValidationError(f"unknown fields: {', '.join(sorted(unknown))}", code="invalid_fields",
                              details={"fields": {name: ["unknown field"] for name in sorted(unknown)}})
    with transaction.atomic():
        pref = NotificationPreference.objects.select_for_update().filter(project=project).first() \
            or NotificationPreference(project=project)
        rotate = bool(changes.pop("rotate_webhook_secret", False))
        url_changed = "webhook_url" in changes and changes["webhook_url"] != pref.webhook_url
        for name, value in changes.items():
            setattr(pref, name, value)
        preference_check(pref, url_changed=url_changed)
        if pref.webhook_url and (rotate or url_changed or not pref.webhook_secret):
            pref.webhook_secret = pref.new_webhook_secret = webhook_secret_new()
        pref.save()
        # Field names only: the values include the webhook URL and the Twilio credentials.
        audit_record(action=AuditAction.NOTIFICATIONS_CHANGED, target=f"project {project.slug}", project=project,
                     details={"fields": sorted(changes)})
    log.info("notification preferences of %s changed: %s", project.slug, ", ".join(sorted(changes)))
    return pref


def preference_check(pref: NotificationPreference, *, url_changed: bool = False) -> None:
    if pref.webhook_url and url_changed:
        try:
            destination(pref.webhook_url, allowed=networks(settings.WEBHOOK_ALLOWED_NETS))
        except Unresolvable:
            pass  # DNS may be split or down now; each send checks again, so an inside address is refused then
        except DestinationRefused as exc:
            raise ValidationError(f"webhook_url: {exc}", code="invalid_fields",
                                  details={"fields": {"webhook_url": [str(exc)]}}) from None
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
