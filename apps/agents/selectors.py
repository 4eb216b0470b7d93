"""Reads for sessions: lists with their task, one session, its transcript."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import QuerySet, Sum

from apps.agents.models import AgentCost, AgentSession, Checkpoint, ModelPrice, SessionEvent
from apps.core.errors import NotFoundError
from apps.core.validation import as_id
from apps.projects.models import Project
from apps.projects.permissions import Act, permission_require
from apps.projects.selectors import projects_visible_to


def sessions_list(*, project: Project) -> QuerySet[AgentSession]:
    return project.sessions.select_related("task").order_by("-created")


def session_find(session_id: int | str, rows: QuerySet[AgentSession] | None = None) -> AgentSession:
    rows = AgentSession.objects.select_related("project", "task") if rows is None else rows
    pk = as_id(str(session_id))
    session = rows.filter(pk=pk).first() if pk is not None else None
    if session is None:
        raise NotFoundError(f"session {str(session_id)!r} not found", code="session_not_found")
    return session


def events_list(*, session: AgentSession, after: int = 0, limit: int | None = None) -> QuerySet[SessionEvent]:
    rows = session.events.filter(seq__gt=after).order_by("seq")
    return rows[:limit] if limit else rows


def session_get(*, user, session_id: int | str, operate: bool = False) -> AgentSession:
    """The session if its project is visible to `user` (else not found), and operable when `operate`."""
    rows = AgentSession.objects.select_related("project", "task").filter(project__in=projects_visible_to(user))
    session = session_find(session_id, rows)
    if operate:
        permission_require(user, session.project, Act.OPERATE)
    return session


def project_spent(*, project: Project) -> Decimal:
    """Dollars recorded for the project's calls so far (replayed calls too: the budget counts what they stand for)."""
    return AgentCost.objects.filter(project=project).aggregate(total=Sum("cost_usd"))["total"] or Decimal(0)


def checkpoint_get(*, session: AgentSession) -> Checkpoint | None:
    """The session's checkpoint (where a resumed session continues), or None before its first turn."""
    return Checkpoint.objects.filter(session=session).only("session", "turn", "event_seq", "updated").first()


def model_prices() -> list[ModelPrice]:
    return list(ModelPrice.objects.all())
