"""django-q2 entry points: plain functions taking ids, each calling one service."""

from __future__ import annotations

from apps.agents.models import AgentSession
from apps.orchestration import runs
from apps.projects.models import Project


def run_step(project_id: int) -> None:
    runs.run_step(project=Project.objects.get(pk=project_id))


def run_planning(session_id: int, resume_message: str | None = None, force: bool = False) -> None:
    session = AgentSession.objects.select_related("project").get(pk=session_id)
    runs.planning_execute(session=session, resume_message=resume_message, force=force)


def continue_coding(session_id: int, resume_message: str | None = None, force: bool = False) -> None:
    session = AgentSession.objects.select_related("project").get(pk=session_id)
    runs.coding_execute(session=session, resume_message=resume_message, force=force)
