"""Server-rendered pages. Login is enforced by LoginRequiredMiddleware; access per project by selectors."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from apps.core.errors import NotFoundError
from apps.projects import selectors
from apps.projects.graph import CycleError


def projects(request: HttpRequest) -> HttpResponse:
    projects = selectors.projects_with_counts(request.user)
    return render(request, "dashboard/projects.html", {"projects": projects})


def project(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        project = selectors.project_get(user=request.user, project_id=slug)
    except NotFoundError as exc:
        raise Http404(exc.message) from None
    if request.htmx:  # the polled fragment needs only the task rows, not the graph
        return render(request, "dashboard/project.html#tasks", {"tasks": selectors.tasks_list(project)})
    graph = selectors.project_graph(project)
    analysis = graph.analyze()
    try:
        critical, critical_minutes = graph.critical_path()
    except CycleError:
        critical, critical_minutes = [], 0.0
    context = {
        "project": project,
        "counts": selectors.project_counts(project),
        "epics": selectors.epics_list(project),
        "tasks": selectors.tasks_list(project),
        "batches": analysis.batches,
        "analysis": analysis,
        "critical": critical,
        "critical_minutes": critical_minutes,
        "can_operate": selectors.can_operate(request.user, project),
    }
    return render(request, "dashboard/project.html", context)
