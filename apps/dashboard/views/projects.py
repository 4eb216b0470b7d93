"""The projects list and the live project dashboard: swimlanes, progress panel, and the run's actions.

The dashboard's two live regions poll their partials. The swimlanes send the sequence number of the newest event
they show; while no newer event exists the answer is 204 (htmx keeps the region). When the run is over the answer
is 286, which tells htmx to stop polling.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.core.errors import YokeFlowError
from apps.dashboard.views.common import project_context, project_for
from apps.interventions.selectors import budget_paused
from apps.orchestration import lifecycle, runs, scheduler
from apps.orchestration.selectors import project_board, run_progress
from apps.projects import selectors
from apps.projects.events import event_last_seq, events_recent, project_live
from apps.projects.graph import CycleError
from apps.projects.models import Project

STOP_POLLING = 286
ACTIVITY_SHOWN = 12


def projects(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/projects.html", {"projects": selectors.projects_with_counts(request.user)})


def project(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for(request, slug)
    part = request.GET.get("part")
    if request.htmx and part == "swimlanes":
        return _swimlanes(request, project)
    if request.htmx and part == "progress":
        return _progress(request, project)
    board = project_board(project=project)
    context = {**project_context(request, project, "dashboard"), **_live(project), "board": board,
               "last_seq": board.last_seq,
               "progress": run_progress(project=project, cards=board.cards),
               "activity": _activity(project), "critical": _critical(project),
               "budget_paused": budget_paused(project=project)}
    return render(request, "dashboard/project.html", context)


def _live(project: Project) -> dict:
    """Should the page keep polling: the run goes on, or an agent (planning too) is still at work."""
    return {"live": project_live(project), "poll_seconds": settings.DASHBOARD_POLL_SECONDS}


def _unchanged(request: HttpRequest, live: dict, last_seq: int) -> bool:
    """A live region's poll sends the newest event it shows: no newer event means nothing on it changed."""
    after = request.GET.get("after", "")
    return live["live"] and after.isdigit() and int(after) >= last_seq


def _swimlanes(request: HttpRequest, project: Project) -> HttpResponse:
    live = _live(project)
    if _unchanged(request, live, event_last_seq(project)):
        return HttpResponse(status=204)  # htmx keeps the cards on screen
    context = {**project_context(request, project, "dashboard"), **live, "board": project_board(project=project)}
    return render(request, "dashboard/project.html#swimlanes", context, status=200 if live["live"] else STOP_POLLING)


def _progress(request: HttpRequest, project: Project) -> HttpResponse:
    live = _live(project)
    last_seq = event_last_seq(project)
    if _unchanged(request, live, last_seq):
        return HttpResponse(status=204)
    context = {**project_context(request, project, "dashboard"), **live, "progress": run_progress(project=project),
               "activity": _activity(project), "budget_paused": budget_paused(project=project), "last_seq": last_seq}
    return render(request, "dashboard/project.html#progress", context, status=200 if live["live"] else STOP_POLLING)


def _activity(project: Project) -> list:
    """The newest events, newest first: the same rows the event feed serves."""
    return events_recent(project=project, limit=ACTIVITY_SHOWN)


def _critical(project: Project) -> dict:
    graph = selectors.project_graph(project)
    analysis = graph.analyze()
    try:
        keys, minutes = graph.critical_path()
    except CycleError:
        keys, minutes = [], 0.0
    return {"keys": keys, "minutes": minutes, "analysis": analysis}


# ------------------------------------------------------------------------------------------------ actions


def _act(request: HttpRequest, slug: str, action: Callable[[Project], object], done: str) -> HttpResponse:
    """Run one action as an operator of the project; success and refusal (a viewer, a run already going, a task
    that cannot be retried) both come back to the dashboard as a message, never as a 500."""
    project = project_for(request, slug)
    try:
        action(selectors.project_get(user=request.user, project_id=project.pk, operate=True))
    except YokeFlowError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    return redirect("dashboard:project", slug=project.slug)


@require_POST
def run_start(request: HttpRequest, slug: str) -> HttpResponse:
    return _act(request, slug, lambda project: lifecycle.run_start(project=project), "Run started")


@require_POST
def run_cancel(request: HttpRequest, slug: str) -> HttpResponse:
    return _act(request, slug, lambda project: lifecycle.run_cancel(project=project),
                "Run cancelled: running agents stop within a turn")


@require_POST
def task_retry(request: HttpRequest, slug: str, key: str) -> HttpResponse:
    def retry(project: Project) -> None:
        runs.task_retry(task=selectors.task_get(project, key))
        scheduler.project_kick(project=project)  # a stopped run goes on with the retried task

    return _act(request, slug, retry, f"Task {key} is queued again")
