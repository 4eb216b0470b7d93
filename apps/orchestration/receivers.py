"""Orchestration's answers to interventions (which never import orchestration): a resolved pause continues its
session from the checkpoint; the end of a provider hold lets waiting runs start tasks again."""

from __future__ import annotations

from django.conf import settings

from apps.agents.models import AgentSession
from apps.agents.services import checkpoint_grant_turns
from apps.core.errors import ConflictError
from apps.interventions.models import PausedSession, PauseType, ProviderAccount
from apps.interventions.signals import hold_released, pause_resolved
from apps.orchestration import execution, runs, scheduler, worktree_actions
from apps.orchestration.models import Worktree
from apps.projects.models import Project


def pause_continue(sender: type, *, pause: PausedSession, by: str, notes: str, **kwargs: object) -> None:
    """Queue the continuation of the paused session, with the resolution notes as its resume message."""
    session = AgentSession.objects.select_related("project", "task").get(pk=pause.session_id)
    if pause.pause_type == PauseType.ATTEMPTS_EXHAUSTED and session.task is not None:
        execution.task_resume_attempts(task=session.task, by=by, notes=notes)
        scheduler.project_kick(project=session.project)
        return
    if session.status == AgentSession.Status.COMPLETED:  # its work waits to merge: try the merge again
        _merge_again(pause)
        return
    if pause.pause_type == PauseType.TURN_CAP:
        checkpoint_grant_turns(session=session, turns=settings.AGENT_MAX_TURNS)
    runs.session_continue(session=session, notes=notes, by=by)


def _merge_again(pause: PausedSession) -> None:
    worktree = Worktree.objects.select_related("project").filter(pk=pause.blocker_info.get("worktree_id")).first()
    if worktree is None or not worktree.is_live:
        return  # merged or removed meanwhile: nothing waits any more
    result = worktree_actions.worktree_merge_request(worktree=worktree)
    if not result.ok:
        problem = ", ".join(result.conflict_files) or "; ".join(result.failures)
        raise ConflictError(f"{worktree.branch} still does not merge ({problem}); resolve it with ours/theirs or "
                            "by hand in its worktree, then resume", code="merge_still_blocked")


def hold_ended(sender: type, *, account: str, **kwargs: object) -> None:
    """Every running project may claim tasks again (they claimed none while the account was held)."""
    for project_id in Project.objects.filter(status=Project.Status.RUNNING).values_list("pk", flat=True):
        scheduler.schedule(project_id=project_id)


def connect() -> None:
    pause_resolved.connect(pause_continue, sender=PausedSession, dispatch_uid="orchestration.pause_continue")
    hold_released.connect(hold_ended, sender=ProviderAccount, dispatch_uid="orchestration.hold_ended")
