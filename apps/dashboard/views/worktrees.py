"""The worktrees page: each branch agents work in, its conflicts and live git status, and a person's merge,
conflict resolution or clean-up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.core.errors import ValidationError, YokeFlowError, http_status
from apps.dashboard.views.common import project_context, project_for
from apps.orchestration import selectors, worktree_actions
from apps.orchestration.merging import MergeResult
from apps.orchestration.models import Worktree
from apps.projects.models import Project

SIDES = {"ours": "ours: keep the default branch's side of each conflict",
         "theirs": "theirs: keep the worktree's side of each conflict",
         "manual": "manual: I fix it in the worktree myself"}


def worktrees(request: HttpRequest, slug: str) -> HttpResponse:
    return _page(request, project_for(request, slug))


@require_POST
def worktree_action(request: HttpRequest, slug: str, worktree_id: int, action: str) -> HttpResponse:
    """merge, resolve (with `side`) or cleanup (with `force`); a refusal re-renders the page with the reason."""
    project = project_for(request, slug)  # an invisible project, another project's worktree: 404 before anything
    worktree = selectors.worktrees_list(project=project).filter(pk=worktree_id).first()
    run = ACTIONS.get(action)
    if worktree is None or run is None:
        raise Http404(f"no worktree {worktree_id} with an action {action[:40]!r} in project {project.slug!r}")
    try:
        project_for(request, slug, operate=True)  # a viewer gets the selectors' PermissionDeniedError (403)
        level, notice = run(request, worktree)
    except YokeFlowError as exc:  # busy 409, not live 409, dirty 409, bad side 422, viewer 403
        failed = {"id": worktree.pk, "action": action, "side": request.POST.get("side", "")}
        return _page(request, project, status=http_status(exc), error=f"{worktree.branch}: {exc.message}",
                     failed=failed)
    messages.add_message(request, level, notice)
    return redirect("dashboard:worktrees", slug=project.slug)


def _page(request: HttpRequest, project: Project, *, status: int = 200, **extra: Any) -> HttpResponse:
    rows = list(selectors.worktrees_list(project=project))
    live = [selectors.worktree_detail(row) for row in rows if row.is_live]  # runs git: only where there is one
    context = {**project_context(request, project, "worktrees"), "live": live,
               "history": [row for row in rows if not row.is_live], "sides": SIDES, **extra}
    return render(request, "dashboard/worktrees.html", context, status=status)


# --- the actions: each returns a message level and the text a person reads after the redirect ---------------------

def _merge(request: HttpRequest, worktree: Worktree) -> tuple[int, str]:
    return _outcome(worktree, worktree_actions.worktree_merge_request(worktree=worktree))


def _resolve(request: HttpRequest, worktree: Worktree) -> tuple[int, str]:
    side = request.POST.get("side", "")
    if side not in SIDES:
        raise ValidationError(f"side: choose {', '.join(SIDES)}", code="invalid_fields",
                              details={"fields": {"side": [f"one of {', '.join(SIDES)}"]}})
    return _outcome(worktree, worktree_actions.worktree_merge_request(worktree=worktree, side=side))


def _cleanup(request: HttpRequest, worktree: Worktree) -> tuple[int, str]:
    force = request.POST.get("force") == "on"
    worktree_actions.worktree_delete(worktree=worktree, force=force)
    discarded = " (uncommitted changes discarded)" if force else ""
    return messages.SUCCESS, f"Removed worktree {worktree.branch}, its directory and its branch{discarded}."


ACTIONS: dict[str, Callable[[HttpRequest, Worktree], tuple[int, str]]] = {
    "merge": _merge, "resolve": _resolve, "cleanup": _cleanup}


def _outcome(worktree: Worktree, result: MergeResult) -> tuple[int, str]:
    """What the merge did. A conflict or failed acceptance test is not an error of the request: the worktree is
    left for a person to resolve, so it is reported as a warning, not a refusal."""
    into = worktree.project.default_branch
    if result.ok:
        done = f"; done: {', '.join(result.done)}" if result.done else ""
        epics = f"; epics completed: {', '.join(result.epics_completed)}" if result.epics_completed else ""
        return messages.SUCCESS, f"Merged {worktree.branch} into {into} as {result.merged[:12]}{done}{epics}."
    if result.conflict_files:
        return messages.WARNING, (f"{worktree.branch} conflicts with {into} in {', '.join(result.conflict_files)}; "
                                  f"nothing was merged. Resolve the conflict below.")
    return messages.WARNING, f"{worktree.branch} was not merged: {'; '.join(result.failures) or 'no change'}."
