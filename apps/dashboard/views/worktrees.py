"""The worktrees page: each branch agents work in, its conflicts and live git status, and a person's merge,
conflict resolution or clean-up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.core.errors import YokeFlowError, http_status
from apps.dashboard.forms import SIDES, WORKTREE_FORMS
from apps.dashboard.views.common import project_context, project_for
from apps.orchestration import selectors, worktree_actions
from apps.orchestration.merging import MergeResult
from apps.orchestration.models import Worktree
from apps.projects.models import Project


def worktrees(request: HttpRequest, slug: str) -> HttpResponse:
    return _page(request, project_for(request, slug))


@require_POST
def worktree_action(request: HttpRequest, slug: str, worktree_id: int, action: str) -> HttpResponse:
    """merge, resolve (with `side`) or cleanup (with `force`); a refusal re-renders the page with the reason."""
    project = project_for(request, slug)  # an invisible project, another project's worktree: 404 before anything
    worktree = selectors.worktree_get(project=project, worktree_id=worktree_id)
    run, form_class = ACTIONS.get(action), WORKTREE_FORMS.get(action)
    if worktree is None or run is None or form_class is None:
        raise Http404(f"no worktree {worktree_id} with an action {action[:40]!r} in project {project.slug!r}")
    form = form_class(request.POST)
    try:
        project_for(request, slug, operate=True)  # a viewer gets the selectors' PermissionDeniedError (403)
        level, notice = run(worktree, form.checked())
    except YokeFlowError as exc:  # busy 409, not live 409, dirty 409, bad side 422, viewer 403
        form.take(exc)
        failed = {"id": worktree.pk, "action": action, "bound": form}
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

def _merge(worktree: Worktree, values: dict[str, Any]) -> tuple[int, str]:
    return _outcome(worktree, worktree_actions.worktree_merge_request(worktree=worktree))


def _resolve(worktree: Worktree, values: dict[str, Any]) -> tuple[int, str]:
    return _outcome(worktree, worktree_actions.worktree_merge_request(worktree=worktree, side=values["side"]))


def _cleanup(worktree: Worktree, values: dict[str, Any]) -> tuple[int, str]:
    worktree_actions.worktree_delete(worktree=worktree, force=values["force"])
    discarded = " (uncommitted changes discarded)" if values["force"] else ""
    return messages.SUCCESS, f"Removed worktree {worktree.branch}, its directory and its branch{discarded}."


ACTIONS: dict[str, Callable[[Worktree, dict[str, Any]], tuple[int, str]]] = {
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
