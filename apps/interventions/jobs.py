"""django-q2 entry points: plain functions taking ids, each calling one service."""

from __future__ import annotations

import logging

from apps.core.errors import YokeFlowError
from apps.interventions import holds, services
from apps.interventions.models import InterventionAction, PausedSession, PauseType
from apps.interventions.notifications import notify_pause
from apps.interventions.recovery import recovery_attempt

log = logging.getLogger(__name__)


def pause_opened(pause_id: int) -> None:
    """Recovery, then notifications, for a pause that was just committed."""
    pause = PausedSession.objects.filter(pk=pause_id).select_related("session", "project").first()
    if pause is not None:
        pause_followup(pause=pause)


def pause_followup(*, pause: PausedSession) -> None:
    """After a pause is committed: try its safe automatic recovery; a pause that may resume by itself and whose
    recovery worked continues at once; otherwise people are told. Nothing here can undo the pause."""
    pause.refresh_from_db()
    if pause.resolved:
        return
    if pause.pause_type in (PauseType.RATE_LIMIT, PauseType.CIRCUIT_OPEN):
        notify_pause(pause=pause)  # holds resume by themselves; notify_on_rate_limit is off by default
        return
    action = recovery_attempt(pause=pause) if pause.blocker_info.get("recovery") else None
    if action is not None and action.action_status == InterventionAction.Status.OK and pause.can_auto_resume:
        what = action.action_details.get("summary") or action.action_details.get("action", "a recovery action")
        try:
            services.pause_resolve(pause=pause, by="automatic recovery",
                                   notes=f"YokeFlow fixed the blocker automatically ({what}). Run the command again.")
            return
        except YokeFlowError as exc:  # recorded as resume_refused; a person takes it from here
            log.warning("pause %s: automatic resume refused: %s", pause.pk, exc.message)
    notify_pause(pause=pause)


def holds_release() -> list[str]:
    return holds.holds_release()
