"""Account-wide holds: when the provider rate-limits or overloads an API key, or keeps failing (the circuit
breaker), every session on that key pauses before its next call, no new task starts on it, and at the reset time
a django-q2 schedule ends the hold and continues the held sessions. Nothing fails and no attempt is burned.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django_q.models import Schedule

from apps.core.errors import YokeFlowError
from apps.interventions.models import InterventionAction, PausedSession, PauseType, ProviderAccount
from apps.interventions.services import pause_resolve
from apps.interventions.signals import hold_released

log = logging.getLogger(__name__)

HELD_TYPES = (PauseType.RATE_LIMIT, PauseType.CIRCUIT_OPEN)
RELEASE_JOB = "apps.interventions.jobs.holds_release"


def hold_active(*, account: str) -> ProviderAccount | None:
    return ProviderAccount.objects.filter(fingerprint=account, hold_until__gt=timezone.now()).first()


def _parse_time(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def reset_time(details: dict[str, Any]) -> datetime:
    """When the account may call again: the latest reset header, else `retry-after`, else the default hold;
    never in the past and never further than `RATE_LIMIT_MAX_HOLD`."""
    now = timezone.now()
    resets = [parsed for value in details.get("resets") or [] if (parsed := _parse_time(str(value)))]
    until = max(resets) if resets else None
    retry_after = details.get("retry_after")
    if until is None and retry_after:
        try:
            until = now + timedelta(seconds=float(retry_after))
        except ValueError:
            until = _parse_time(str(retry_after))
    until = until or now + timedelta(seconds=settings.RATE_LIMIT_DEFAULT_HOLD)
    return min(max(until, now + timedelta(seconds=1)), now + timedelta(seconds=settings.RATE_LIMIT_MAX_HOLD))


def hold_open(*, account: str, kind: str, reason: str, until: datetime) -> ProviderAccount:
    """Put the account on hold until `until` (a longer hold already in place is kept) and schedule its end."""
    with transaction.atomic():
        row, _ = ProviderAccount.objects.select_for_update().get_or_create(fingerprint=account)
        extended = row.hold_until is None or row.hold_until < until
        if extended:
            row.hold_until, row.hold_kind, row.hold_reason = until, kind, reason[:1000]
            row.save(update_fields=["hold_until", "hold_kind", "hold_reason", "updated"])
            _schedule_release(row)
            InterventionAction.objects.create(
                action_type=InterventionAction.Type.HOLD_OPENED, action_status=InterventionAction.Status.OK,
                action_details={"account": account, "kind": kind, "until": until.isoformat(), "reason": reason[:300]})
    if extended:
        log.warning("provider account %s on hold until %s (%s)", account, until.isoformat(), kind)
    return row


def _schedule_release(row: ProviderAccount) -> None:
    Schedule.objects.update_or_create(name=f"yokeflow-hold-{row.fingerprint}", defaults={
        "func": RELEASE_JOB, "schedule_type": Schedule.ONCE, "repeats": -1,
        "next_run": row.hold_until + timedelta(seconds=1)})


def failure_record(*, account: str, error: str) -> ProviderAccount | None:
    """Count a failed call; at `CIRCUIT_FAILURE_THRESHOLD` in a row the circuit opens (a hold for the cooldown)."""
    row, _ = ProviderAccount.objects.get_or_create(fingerprint=account)
    ProviderAccount.objects.filter(pk=row.pk).update(consecutive_failures=F("consecutive_failures") + 1,
                                                     last_error=error[:1000], updated=timezone.now())
    row.refresh_from_db()
    if row.consecutive_failures < settings.CIRCUIT_FAILURE_THRESHOLD:
        return None
    until = timezone.now() + timedelta(seconds=settings.CIRCUIT_COOLDOWN)
    reason = f"{row.consecutive_failures} failed calls in a row; last: {error}"
    return hold_open(account=account, kind=ProviderAccount.HoldKind.CIRCUIT_OPEN, reason=reason, until=until)


def failures_clear(*, account: str) -> None:
    ProviderAccount.objects.filter(fingerprint=account, consecutive_failures__gt=0).update(
        consecutive_failures=0, updated=timezone.now())


def _resume_held(row: ProviderAccount) -> list[int]:
    held = PausedSession.objects.filter(provider_account=row.fingerprint, resolved=False, pause_type__in=HELD_TYPES)
    resumed = []
    for pause in held.order_by("paused_at"):
        try:
            resumed.append(pause_resolve(pause=pause, by="automatic: provider hold ended",
                                         notes=f"The provider account's {row.hold_kind or 'hold'} ended; "
                                               "carry on.").pk)
        except YokeFlowError as exc:  # e.g. its session was cancelled meanwhile; the refusal is audited
            log.warning("held pause %s not resumed: %s", pause.pk, exc.message)
    return resumed


def holds_release(*, now: datetime | None = None) -> list[str]:
    """End every hold whose time has come: resume its held pauses and let the waiting projects start tasks.

    Run by the hold's django-q2 schedule (and by the reaper, should a schedule be lost). Returns the accounts."""
    now = now or timezone.now()
    released = []
    for row in ProviderAccount.objects.filter(hold_until__isnull=False, hold_until__lte=now):
        if not ProviderAccount.objects.filter(pk=row.pk, hold_until=row.hold_until).update(
                hold_until=None, hold_kind="", consecutive_failures=0, updated=now):
            continue  # extended or released by another worker meanwhile
        resumed = _resume_held(row)
        InterventionAction.objects.create(
            action_type=InterventionAction.Type.HOLD_RELEASED, action_status=InterventionAction.Status.OK,
            action_details={"account": row.fingerprint, "kind": row.hold_kind, "resumed_pauses": resumed})
        hold_released.send(sender=ProviderAccount, account=row.fingerprint)
        released.append(row.fingerprint)
        log.info("provider account %s released; %d held sessions continue", row.fingerprint, len(resumed))
    return released
