"""/api: planning, runs (sequential or parallel), worktrees and sessions. Long work is queued (202).

No `from __future__ import annotations` here: django-ninja reads the signatures' types at runtime.
"""

from django.http import HttpRequest
from ninja import Field, Router, Schema, Status

from apps.agents.schemas import ContinueIn, SessionOut
from apps.agents.selectors import session_get
from apps.learning.costs import cost_forecast, forecast_line
from apps.orchestration import lifecycle, runs, selectors, worktree_actions
from apps.orchestration.schemas import (
    BatchOut,
    CancelOut,
    ConflictsOut,
    MergeOut,
    ParallelStartIn,
    ParallelStatusOut,
    ResolveIn,
    WorktreeOut,
)
from apps.orchestration.worktrees import gitmerge, worktree_find
from apps.projects.schemas import TaskOut
from apps.projects.selectors import project_get, task_get

router = Router(tags=["runs"])


class RunOut(Schema):
    project_id: int
    slug: str
    status: str
    forecast: str = Field(description="Likely and worst-case cost of the open tasks, as forecast before the start.")


@router.post("/projects/{project_id}/planning", response={202: SessionOut})
def start_planning(request: HttpRequest, project_id: str):
    project = project_get(user=request.user, project_id=project_id, operate=True)
    return Status(202, runs.planning_start(project=project))


@router.post("/projects/{project_id}/run", response={202: RunOut})
def start_run(request: HttpRequest, project_id: str):
    """Start the run with the project's own settings (parallel, max_concurrency, strategy)."""
    project = project_get(user=request.user, project_id=project_id, operate=True)
    forecast = forecast_line(cost_forecast(project=project))
    project = lifecycle.run_start(project=project)
    return Status(202, {"project_id": project.pk, "slug": project.slug, "status": project.status,
                        "forecast": forecast})


@router.post("/sessions/{session_id}/continue", response={202: SessionOut})
def continue_session(request: HttpRequest, session_id: str, payload: ContinueIn):
    session = session_get(user=request.user, session_id=session_id, operate=True)
    by = request.user.get_username()
    return Status(202, runs.session_continue(session=session, notes=payload.notes, by=by, force=payload.force))


@router.post("/sessions/{session_id}/kill", response=SessionOut)
def kill_session(request: HttpRequest, session_id: str):
    """Stop a session now: its running command's process group is killed; a session whose worker is gone ends."""
    return lifecycle.session_kill(session=session_get(user=request.user, session_id=session_id, operate=True))


@router.post("/projects/{project_id}/tasks/{task_id}/retry", response=TaskOut)
def retry_task(request: HttpRequest, project_id: str, task_id: str):
    project = project_get(user=request.user, project_id=project_id, operate=True)
    return runs.task_retry(task=task_get(project, task_id), by=request.user.get_username())


@router.post("/projects/{project_id}/tasks/{task_id}/cancel", response=TaskOut)
def cancel_task(request: HttpRequest, project_id: str, task_id: str):
    """Cancel one task in any state but done (its open session too); refused while it is being merged."""
    project = project_get(user=request.user, project_id=project_id, operate=True)
    return runs.task_cancel(task=task_get(project, task_id), by=request.user.get_username())


# ------------------------------------------------------------------------------------------------ parallel


@router.post("/projects/{project_id}/parallel/start", response={202: ParallelStatusOut})
def parallel_start(request: HttpRequest, project_id: str, payload: ParallelStartIn):
    project = project_get(user=request.user, project_id=project_id, operate=True)
    project = lifecycle.run_start(project=project, parallel=payload.parallel, strategy=payload.strategy,
                                  max_concurrency=payload.max_concurrency)
    return Status(202, selectors.parallel_status(project=project))


@router.get("/projects/{project_id}/parallel/status", response=ParallelStatusOut)
def parallel_status(request: HttpRequest, project_id: str):
    return selectors.parallel_status(project=project_get(user=request.user, project_id=project_id))


@router.post("/projects/{project_id}/parallel/cancel", response=CancelOut)
def parallel_cancel(request: HttpRequest, project_id: str):
    project = project_get(user=request.user, project_id=project_id, operate=True)
    counts = lifecycle.run_cancel(project=project)
    return {"project_id": project.pk, "status": project.status, "sessions": counts}


@router.get("/projects/{project_id}/parallel/batches", response=list[BatchOut])
def parallel_batches(request: HttpRequest, project_id: str):
    return selectors.batches_list(project=project_get(user=request.user, project_id=project_id))


@router.get("/projects/{project_id}/parallel/batches/{number}", response=BatchOut)
def parallel_batch(request: HttpRequest, project_id: str, number: int):
    return selectors.batch_get(project=project_get(user=request.user, project_id=project_id), number=number)


# ------------------------------------------------------------------------------------------------ worktrees


@router.get("/projects/{project_id}/worktrees", response=list[WorktreeOut])
def worktrees(request: HttpRequest, project_id: str, live: bool = False):
    project = project_get(user=request.user, project_id=project_id)
    return list(selectors.worktrees_list(project=project, live_only=live))


@router.get("/projects/{project_id}/worktrees/{epic_id}", response=WorktreeOut)
def worktree(request: HttpRequest, project_id: str, epic_id: str):
    """The epic's worktree (key or id; its conflicted one first, then its newest live one); a task key also works."""
    project = project_get(user=request.user, project_id=project_id)
    return selectors.worktree_detail(worktree_find(project, epic_id))


@router.get("/projects/{project_id}/worktrees/{epic_id}/conflicts", response=ConflictsOut)
def worktree_conflicts(request: HttpRequest, project_id: str, epic_id: str):
    """Checked now with `git merge-tree` (nothing is changed); a merged or removed worktree has none."""
    project = project_get(user=request.user, project_id=project_id)
    found = worktree_find(project, epic_id)
    files = gitmerge.conflicts(project.repo_path, found.branch, into=project.default_branch) if found.is_live else []
    return {"worktree_id": found.pk, "branch": found.branch, "into": project.default_branch,
            "conflicts": bool(files), "files": files}


@router.post("/projects/{project_id}/worktrees/{epic_id}/merge", response=MergeOut)
def worktree_merge(request: HttpRequest, project_id: str, epic_id: str):
    project = project_get(user=request.user, project_id=project_id, operate=True)
    found = worktree_find(project, epic_id)
    return _merge_out(found, worktree_actions.worktree_merge_request(worktree=found))


@router.post("/projects/{project_id}/worktrees/{epic_id}/resolve", response=MergeOut)
def worktree_resolve(request: HttpRequest, project_id: str, epic_id: str, payload: ResolveIn):
    project = project_get(user=request.user, project_id=project_id, operate=True)
    found = worktree_find(project, epic_id)
    return _merge_out(found, worktree_actions.worktree_merge_request(worktree=found, side=payload.strategy))


@router.delete("/projects/{project_id}/worktrees/{epic_id}", response=WorktreeOut)
def worktree_delete(request: HttpRequest, project_id: str, epic_id: str, force: bool = False):
    """Remove the worktree and its branch (`force` also discards uncommitted changes)."""
    project = project_get(user=request.user, project_id=project_id, operate=True)
    return worktree_actions.worktree_delete(worktree=worktree_find(project, epic_id), force=force)


def _merge_out(found, result) -> dict:
    found.refresh_from_db()
    return {"worktree_id": found.pk, "status": found.status, **result.__dict__}
