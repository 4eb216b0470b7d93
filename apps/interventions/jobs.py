"""django-q2 entry points: plain functions taking ids, each calling one service."""

from __future__ import annotations

from apps.interventions import holds, services
from apps.interventions.models import PausedSession


def pause_opened(pause_id: int) -> None:
    """Recovery, then notifications, for a pause that was just committed."""
    pause = PausedSession.objects.filter(pk=pause_id).select_related("session", "project").first()
    if pause is not None:
        services.pause_followup(pause=pause)


def holds_release() -> list[str]:
    return holds.holds_release()
