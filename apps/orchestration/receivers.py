"""Orchestration's answers to interventions (which never import orchestration): a resolved pause continues its
session from the checkpoint; the end of a provider hold lets waiting runs start tasks again."""

from __future__ import annotations

from django.conf import settings

from apps.agents.models import AgentSession
from apps.agents.services import checkpoint_grant_turns
from apps.interventions.models import PausedSession, PauseType, ProviderAccount
from apps.interventions.signals import hold_released, pause_resolved
from apps.orchestration import runs, scheduler
from apps.projects.models import Project


def pause_continue(sender: type, *, pause: PausedSession, by: str, notes: str, **kwargs: object) -> None:
    """Queue the continuation of the paused session, with the resolution notes as its resume message."""
    session = AgentSession.objects.select_related("project", "task").get(pk=pause.session_id)
    if pause.pause_type == PauseType.TURN_CAP:
        checkpoint_grant_turns(session=session, turns=settings.AGENT_MAX_TURNS)
    runs.session_continue(session=session, notes=notes, by=by)


def hold_ended(sender: type, *, account: str, **kwargs: object) -> None:
    """Every running project may claim tasks again (they claimed none while the account was held)."""
    for project_id in Project.objects.filter(status=Project.Status.RUNNING).values_list("pk", flat=True):
        scheduler.schedule(project_id=project_id)


def connect() -> None:
    pause_resolved.connect(pause_continue, sender=PausedSession, dispatch_uid="orchestration.pause_continue")
    hold_released.connect(hold_ended, sender=ProviderAccount, dispatch_uid="orchestration.hold_ended")
