"""/api/projects/{id}/expertise, /costs, /costs/forecast and /model-stats.

No `from __future__ import annotations` here: django-ninja reads the signatures' types at runtime.
"""

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema

from apps.learning import costs, expertise, model_selector, selectors, services
from apps.learning.models import ExpertiseFile, ExpertiseUpdate
from apps.learning.schemas import (
    CostsOut,
    ExpertiseChangeOut,
    ExpertiseOut,
    ExpertiseSummaryOut,
    ExpertiseUpdateOut,
    ForecastOut,
    ModelStatOut,
)
from apps.projects.models import Domain
from apps.projects.selectors import project_get

router = Router(tags=["learning"])


class HistoryQuery(Schema):
    limit: int = Field(50, ge=1, le=500)


def _summary(file: ExpertiseFile) -> dict:
    return {"domain": file.domain, "version": file.version, "line_count": file.line_count,
            "validated_at": file.validated_at, "updated": file.updated if file.pk else None,
            "counts": {name: len(items) for name, items in file.content.items()}}


def _detail(file: ExpertiseFile) -> dict:
    return {**_summary(file), "content": file.content, "markdown": expertise.render_markdown(file.content)}


def _update(update: ExpertiseUpdate) -> dict:
    return {"id": update.pk, "version": update.version, "change_type": update.change_type, "summary": update.summary,
            "diff": update.diff, "session_id": update.session_id,
            "author": update.author.get_username() if update.author else None, "created": update.created}


@router.get("/projects/{project_id}/expertise", response=list[ExpertiseSummaryOut])
def expertise_list(request: HttpRequest, project_id: str):
    """Every domain with its version, size and validation time (version 0: nothing learned yet)."""
    project = project_get(user=request.user, project_id=project_id)
    return [_summary(file) for file in selectors.expertise_all(project=project)]


@router.get("/projects/{project_id}/expertise/{domain}", response=ExpertiseOut)
def expertise_detail(request: HttpRequest, project_id: str, domain: Domain):
    project = project_get(user=request.user, project_id=project_id)
    return _detail(selectors.expertise_read(project=project, domain=domain))


@router.post("/projects/{project_id}/expertise/{domain}/validate", response=ExpertiseChangeOut)
def expertise_validate(request: HttpRequest, project_id: str, domain: Domain):
    """Drop core files gone from the default branch and failures older than the cut-off; stamp validated_at."""
    project = project_get(user=request.user, project_id=project_id, operate=True)
    update = services.validate_expertise(expertise=services.expertise_file(project=project, domain=domain))
    return {"expertise": _detail(update.expertise), "update": _update(update)}


@router.post("/projects/{project_id}/expertise/{domain}/improve", response=ExpertiseChangeOut)
def expertise_improve(request: HttpRequest, project_id: str, domain: Domain):
    """Scan the default branch for the domain's files and add them as core files."""
    project = project_get(user=request.user, project_id=project_id, operate=True)
    update = services.self_improve(expertise=services.expertise_file(project=project, domain=domain))
    return {"expertise": _detail(update.expertise), "update": _update(update)}


@router.get("/projects/{project_id}/expertise/{domain}/history", response=list[ExpertiseUpdateOut])
def expertise_history(request: HttpRequest, project_id: str, domain: Domain, filters: Query[HistoryQuery]):
    """The domain's changes, newest first (`limit` 1–500), each with its unified diff."""
    project = project_get(user=request.user, project_id=project_id)
    return [_update(u) for u in selectors.expertise_history(project=project, domain=domain, limit=filters.limit)]


@router.get("/projects/{project_id}/costs", response=CostsOut)
def costs_summary(request: HttpRequest, project_id: str):
    """Spend by model, task type, session and day, with the budget's state."""
    return costs.costs_summary(project=project_get(user=request.user, project_id=project_id))


@router.get("/projects/{project_id}/costs/forecast", response=ForecastOut)
def costs_forecast(request: HttpRequest, project_id: str):
    """Likely and worst-case cost of the open tasks, per tier, from this project's own history."""
    forecast = costs.cost_forecast(project=project_get(user=request.user, project_id=project_id))
    return ForecastOut(**vars(forecast), summary=costs.forecast_line(forecast))


@router.get("/projects/{project_id}/model-stats", response=list[ModelStatOut])
def model_stats(request: HttpRequest, project_id: str):
    """Per tier and task type: sessions, success rate, attempts per task, cost and turns in this project."""
    return model_selector.model_stats(project=project_get(user=request.user, project_id=project_id))
