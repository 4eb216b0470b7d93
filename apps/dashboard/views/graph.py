"""The dependency graph page: the mermaid diagram with its critical path, the batches with task statuses, the text
view, and links to the same graph as text from the API."""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from apps.dashboard.views.common import project_context, project_for
from apps.projects import selectors
from apps.projects.graph import CycleError, DependencyGraph
from apps.projects.models import Project, Task


@dataclass(frozen=True, slots=True)
class TaskPill:
    """One task as the batch list shows it: its key, title and a status pill."""

    key: str
    title: str
    status: str
    status_label: str


def graph(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for(request, slug)
    dependency_graph = selectors.project_graph(project)
    context = project_context(request, project, "graph")
    context |= _graph_context(dependency_graph, selectors.task_statuses(project))
    context |= _api_links(project)
    return render(request, "dashboard/graph.html", context)


def _graph_context(dependency_graph: DependencyGraph, statuses: dict[str, str]) -> dict:
    """Everything the page draws from one graph; an empty graph only needs `has_tasks` (the empty state)."""
    if not dependency_graph.nodes:
        return {"has_tasks": False}
    analysis = dependency_graph.analyze()
    scheduled = set(analysis.order)
    critical, critical_minutes = _critical_path(dependency_graph)
    return {
        "has_tasks": True,
        "analysis": analysis,
        "mermaid_source": dependency_graph.to_mermaid(highlight_critical=True),
        "ascii_view": dependency_graph.to_ascii(),
        "critical": critical,
        "critical_minutes": critical_minutes,
        "batches": [_pills(dependency_graph, batch, statuses) for batch in analysis.batches],
        # Tasks in, or waiting behind, a cycle belong to no batch; list them so none silently vanish.
        "unscheduled": _pills(dependency_graph, [k for k in dependency_graph.nodes if k not in scheduled], statuses),
    }


def _critical_path(dependency_graph: DependencyGraph) -> tuple[list[str], float]:
    # A cyclic graph has no critical path; the page shows the cycles instead of failing.
    try:
        return dependency_graph.critical_path()
    except CycleError:
        return [], 0.0


def _pills(dependency_graph: DependencyGraph, keys: list[str], statuses: dict[str, str]) -> list[TaskPill]:
    return [_pill(key, dependency_graph.nodes[key].title, statuses.get(key, "")) for key in keys]


def _pill(key: str, title: str, status: str) -> TaskPill:
    # A task added between the two queries has no status yet: show it as unknown rather than fail.
    label = Task.Status(status).label if status in Task.Status.values else "unknown"
    return TaskPill(key=key, title=title, status=status or "unknown", status_label=label)


def _api_links(project: Project) -> dict[str, str]:
    """The same graph as plain text from the API (the browser's session authenticates the GET)."""
    url = reverse("api:get_dependencies", args=[project.slug])
    return {"api_mermaid_url": f"{url}?format=mermaid", "api_ascii_url": f"{url}?format=ascii"}
