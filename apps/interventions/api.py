"""/api/interventions and /api/projects/{id}/notifications: paused sessions, resuming them, who is told.

No `from __future__ import annotations` here: django-ninja reads the signatures' types at runtime.
"""

from django.http import HttpRequest
from ninja import Query, Router, Schema

from apps.interventions import selectors, services
from apps.interventions.schemas import (
    BudgetApproveIn,
    BudgetApproveOut,
    NotificationPreferenceIn,
    NotificationPreferenceOut,
    PauseOut,
    ResumeIn,
)
from apps.projects.permissions import Act
from apps.projects.selectors import project_get

router = Router(tags=["interventions"])


class ActiveQuery(Schema):
    project_id: str | None = None


class HistoryQuery(ActiveQuery):
    limit: int = 50


@router.get("/interventions/active", response=list[PauseOut])
def active(request: HttpRequest, filters: Query[ActiveQuery]):
    """Unresolved pauses (oldest first), of one project or of every project you can see."""
    return list(selectors.pauses_active(user=request.user, project_id=filters.project_id))


@router.get("/interventions/history", response=list[PauseOut])
def history(request: HttpRequest, filters: Query[HistoryQuery]):
    """Resolved pauses, most recent first (`limit` 1–500)."""
    return list(selectors.pauses_history(user=request.user, project_id=filters.project_id, limit=filters.limit))


@router.get("/interventions/{pause_id}", response=PauseOut)
def detail(request: HttpRequest, pause_id: str):
    return selectors.pause_get(user=request.user, pause_id=pause_id)


@router.post("/interventions/{pause_id}/resume", response=PauseOut)
def resume(request: HttpRequest, pause_id: str, data: ResumeIn):
    """Resolve the pause and continue its session from the checkpoint with the notes; 409 if already resolved."""
    pause = selectors.pause_get(user=request.user, pause_id=pause_id, operate=True)
    services.pause_resolve(pause=pause, by=data.resolved_by, notes=data.resolution_notes)
    return selectors.pause_get(user=request.user, pause_id=pause_id)


@router.get("/projects/{project_id}/notifications/preferences", response=NotificationPreferenceOut)
def preferences(request: HttpRequest, project_id: str):
    project = project_get(user=request.user, project_id=project_id)
    return selectors.preference_for(project=project)


@router.post("/projects/{project_id}/notifications/preferences", response=NotificationPreferenceOut)
def preferences_update(request: HttpRequest, project_id: str, data: NotificationPreferenceIn):
    """Change the preferences; omitted fields keep their value. Secrets are stored encrypted, shown masked."""
    project = project_get(user=request.user, project_id=project_id, act=Act.NOTIFICATIONS)
    changes = {name: value for name, value in data.model_dump(exclude_unset=True).items() if value is not None}
    return services.preference_update(project=project, changes=changes)


@router.post("/projects/{project_id}/budget/approve", response=BudgetApproveOut)
def budget_approve(request: HttpRequest, project_id: str, data: BudgetApproveIn):
    """Raise the budget by `amount` and continue the sessions paused for budget (409 if the project has none)."""
    project = project_get(user=request.user, project_id=project_id, act=Act.BUDGET)
    return services.budget_approve(project=project, amount=data.amount, by=request.user.get_username(),
                                   notes=data.notes)
