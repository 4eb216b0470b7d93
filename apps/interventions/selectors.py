"""Reads of interventions, limited to the projects the user may see."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from apps.agents.models import AgentSession
from apps.core.errors import NotFoundError
from apps.core.validation import as_id
from apps.interventions.models import InterventionAction, NotificationPreference, PausedSession, PauseType
from apps.projects.models import Project
from apps.projects.permissions import Act, permission_require
from apps.projects.selectors import User, project_get, projects_visible_to

HISTORY_LIMIT_MAX = 500


def _pauses(user: User, project_ref: int | str | None) -> QuerySet[PausedSession]:
    rows = PausedSession.objects.select_related("project", "session", "current_task").prefetch_related(
        Prefetch("actions", queryset=InterventionAction.objects.order_by("created", "pk")))
    if project_ref not in (None, ""):
        return rows.filter(project=project_get(user=user, project_id=project_ref))
    return rows.filter(project__in=projects_visible_to(user).values("pk"))


def pauses_active(*, user: User, project_id: int | str | None = None) -> QuerySet[PausedSession]:
    """Unresolved pauses, oldest first (the longest wait at the top)."""
    return _pauses(user, project_id).filter(resolved=False).order_by("paused_at", "pk")


def pauses_history(*, user: User, project_id: int | str | None = None, limit: int = 50) -> QuerySet[PausedSession]:
    """Resolved pauses, most recently resolved first."""
    limit = max(1, min(int(limit), HISTORY_LIMIT_MAX))
    return _pauses(user, project_id).filter(resolved=True).order_by("-resolved_at", "-pk")[:limit]


def pause_get(*, user: User, pause_id: int | str, operate: bool = False) -> PausedSession:
    """A pause the user may see (and resume, with `operate`); another project's pause is "not found"."""
    pk = as_id(str(pause_id))
    pause = _pauses(user, None).filter(pk=pk).first() if pk is not None else None
    if pause is None:
        raise NotFoundError(f"intervention {pause_id!r} not found", code="intervention_not_found")
    if operate:
        permission_require(user, pause.project, Act.OPERATE)
    return pause


def pause_find(pause_id: int | str) -> PausedSession:
    """Any pause by id (the command line acts as the operator)."""
    pk = as_id(str(pause_id))
    pause = PausedSession.objects.select_related("project", "session").filter(pk=pk).first() if pk else None
    if pause is None:
        raise NotFoundError(f"intervention {pause_id!r} not found", code="intervention_not_found")
    return pause


def preference_for(*, project: Project) -> NotificationPreference:
    """The project's preferences, or unsaved defaults when none were set."""
    return NotificationPreference.objects.filter(project=project).first() or NotificationPreference(project=project)


def budget_paused(*, project: Project) -> bool:
    """Some session of the project waits for more budget (new sessions would pause at once: start none)."""
    return PausedSession.objects.filter(project=project, resolved=False, pause_type=PauseType.BUDGET).exists()


def pause_latest(*, session: AgentSession) -> PausedSession | None:
    """The session's newest pause, open or resolved (the session page shows why it stopped last)."""
    return PausedSession.objects.filter(session=session).order_by("-created").first()
