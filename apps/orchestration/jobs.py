"""django-q2 entry points: plain functions taking ids, each calling one service."""

from __future__ import annotations

from apps.agents.models import AgentSession
from apps.orchestration import runs, scheduler


def run_task(session_id: int) -> None:
    """A claimed task's session: worktree, agent, verification, merge; then the next claims."""
    scheduler.task_session_execute(session=_session(session_id))


def continue_task(session_id: int, resume_message: str | None = None, force: bool = False) -> None:
    scheduler.task_session_execute(session=_session(session_id), resume_message=resume_message, force=force)


def run_planning(session_id: int, resume_message: str | None = None, force: bool = False) -> None:
    runs.planning_execute(session=_session(session_id), resume_message=resume_message, force=force)


def reap() -> dict:
    return scheduler.reap()


def _session(session_id: int) -> AgentSession:
    return AgentSession.objects.select_related("project", "task").get(pk=session_id)
