"""/api/projects: projects, plan import, epics, tasks, the dependency graph and the run's event feed.

No `from __future__ import annotations` here: django-ninja reads the signatures' types at runtime.
"""

from typing import Literal

from django.conf import settings
from django.http import HttpRequest, StreamingHttpResponse
from ninja import Query, Router, Status
from ninja.pagination import paginate

from apps.core.api import Pages
from apps.core.errors import ValidationError
from apps.projects import selectors, services
from apps.projects.events import event_as_dict, event_stream, events_after
from apps.projects.graph import CycleError
from apps.projects.models import Project
from apps.projects.plan import PlanSpec, plan_import
from apps.projects.schemas import (
    BatchOut,
    CriticalPathOut,
    DependencyIn,
    DependencyOut,
    EpicOut,
    GraphOut,
    ImportOut,
    ProjectDetailOut,
    ProjectEventOut,
    ProjectEventsQuery,
    ProjectIn,
    ProjectOut,
    ProjectPatch,
    TaskDetailOut,
    TaskFilter,
    TaskOut,
    ValidateOut,
)

router = Router(tags=["projects"])


def _project(request: HttpRequest, project_id: str, *, operate: bool = False) -> Project:
    return selectors.project_get(user=request.user, project_id=project_id, operate=operate)


def _detail(project: Project) -> Project:
    project.counts = selectors.project_counts(project)
    return project


@router.get("/", response=list[ProjectOut])
@paginate(Pages)
def list_projects(request: HttpRequest):
    return selectors.projects_visible_to(request.user)


@router.post("/", response={201: ProjectDetailOut})
def create_project(request: HttpRequest, payload: ProjectIn):
    fields = payload.model_dump(exclude_none=True)
    project = services.project_create(owner=request.user, **fields)
    return Status(201, _detail(project))


@router.get("/{project_id}", response=ProjectDetailOut)
def get_project(request: HttpRequest, project_id: str):
    return _detail(_project(request, project_id))


@router.patch("/{project_id}", response=ProjectDetailOut)
def update_project(request: HttpRequest, project_id: str, payload: ProjectPatch):
    project = _project(request, project_id, operate=True)
    # Only the fields the client sent; an explicit null clears an optional one such as budget_usd.
    return _detail(services.project_update(project=project, by=request.user, **payload.model_dump(exclude_unset=True)))


@router.delete("/{project_id}", response={204: None})
def delete_project(request: HttpRequest, project_id: str):
    project = _project(request, project_id, operate=True)
    services.project_delete(project=project, by=request.user)
    return Status(204, None)


@router.post("/{project_id}/plan", response={201: ImportOut})
def import_plan(
    request: HttpRequest, project_id: str, plan: PlanSpec, replace: bool = False, apply_suggestions: bool = False
):
    """Import a plan (epics, tasks, dependencies, tests) in one transaction; a refused plan writes nothing."""
    project = _project(request, project_id, operate=True)
    result = plan_import(project=project, data=plan, replace=replace, apply_suggestions=apply_suggestions)
    return Status(201, {
        "project": project.pk, "epics": result.epics, "tasks": result.tasks, "dependencies": result.dependencies,
        "tests": result.tests, "batches": len(selectors.project_graph(project).batches()),
        "suggestions": [s.__dict__ for s in result.suggestions], "applied_suggestions": result.applied_suggestions,
    })


@router.get("/{project_id}/epics", response=list[EpicOut])
@paginate(Pages)
def list_epics(request: HttpRequest, project_id: str):
    return selectors.epics_list(_project(request, project_id))


@router.get("/{project_id}/tasks", response=list[TaskOut])
@paginate(Pages)
def list_tasks(request: HttpRequest, project_id: str, filters: Query[TaskFilter]):
    project = _project(request, project_id)
    return selectors.tasks_list(project, status=filters.status, epic=filters.epic)


@router.get("/{project_id}/tasks/{task_id}", response=TaskDetailOut)
def get_task(request: HttpRequest, project_id: str, task_id: str):
    return selectors.task_get(_project(request, project_id), task_id)


@router.post("/{project_id}/tasks/{task_id}/dependencies", response={201: DependencyOut})
def add_dependency(request: HttpRequest, project_id: str, task_id: str, payload: DependencyIn):
    project = _project(request, project_id, operate=True)
    task = selectors.task_get(project, task_id)
    return Status(201, services.dependency_add(project=project, task=task, depends_on=payload.depends_on,
                                               kind=payload.kind))


@router.get("/{project_id}/dependencies", response=GraphOut)
def get_dependencies(request: HttpRequest, project_id: str, format: Literal["json", "mermaid", "ascii"] = "json"):
    """The whole graph: nodes, edges and batches as JSON, or a mermaid diagram / ascii view as text."""
    graph = selectors.project_graph(_project(request, project_id))
    if format == "mermaid":
        return {"format": format, "content": graph.to_mermaid()}
    if format == "ascii":
        return {"format": format, "content": graph.to_ascii()}
    return {"format": format, **selectors.graph_as_dict(graph)}


@router.get("/{project_id}/dependencies/batches", response=list[BatchOut])
def get_batches(request: HttpRequest, project_id: str):
    graph = selectors.project_graph(_project(request, project_id))
    return [{"number": i, "tasks": batch} for i, batch in enumerate(graph.batches(), start=1)]


@router.get("/{project_id}/dependencies/critical-path", response=CriticalPathOut)
def get_critical_path(request: HttpRequest, project_id: str):
    graph = selectors.project_graph(_project(request, project_id))
    try:
        tasks, total = graph.critical_path()
    except CycleError as exc:
        raise ValidationError(str(exc), code="cycle", details={"cycles": exc.cycles}) from None
    return {"tasks": tasks, "total_minutes": total}


@router.get("/{project_id}/dependencies/validate", response=ValidateOut)
def validate_dependencies(request: HttpRequest, project_id: str):
    graph = selectors.project_graph(_project(request, project_id))
    analysis = graph.analyze()
    return {
        "valid": analysis.ok, "tasks": len(graph.nodes), "dependencies": len(graph.edges),
        "batches": len(analysis.batches), "cycles": analysis.cycles, "missing": [list(m) for m in analysis.missing],
    }


@router.get("/{project_id}/events", response=list[ProjectEventOut])
def list_events(request: HttpRequest, project_id: str, query: Query[ProjectEventsQuery]):
    """The run's events in order (batch_start/batch_complete, task_start/task_complete/task_status, agent_status,
    cost_update, run_status): poll with `after` = the last `seq` you saw. The live pages read the same rows."""
    project = _project(request, project_id)
    return [event_as_dict(event) for event in
            events_after(project=project, after=query.after, limit=query.limit, kinds=query.kind)]


@router.get("/{project_id}/events/stream", response={200: None})
def stream_events(request: HttpRequest, project_id: str, after: int = 0):
    """The same events as server-sent events (`text/event-stream`): each frame's `id` is its `seq`, its `event` the
    kind. A reconnecting client sends `Last-Event-ID` and gets what it missed. The stream ends with an `end` event
    when the run is over, or after EVENTS_STREAM_SECONDS (reconnect to go on)."""
    project = _project(request, project_id)
    resume = request.headers.get("Last-Event-ID", "")
    start = int(resume) if resume.isdigit() else max(after, 0)
    response = StreamingHttpResponse(event_stream(project=project, after=start,
                                                  seconds=settings.EVENTS_STREAM_SECONDS),
                                     content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx would otherwise hold the frames back
    return response
