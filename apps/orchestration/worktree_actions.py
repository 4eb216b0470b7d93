"""What people do to a worktree by hand: merge it now (the same path as the automatic finish) or delete it
(audited, refused while a session works in it)."""

from __future__ import annotations

from pathlib import Path

from apps.agents.models import AgentSession
from apps.core.audit import audit_record
from apps.core.errors import ConflictError
from apps.core.models import AuditAction
from apps.orchestration.execution import task_finish
from apps.orchestration.merge_lease import merge_lease_refuse
from apps.orchestration.merging import MergeResult, merge_worktree
from apps.orchestration.models import Worktree
from apps.orchestration.scheduler import ACTIVE_TASKS, OPEN_SESSIONS, project_kick
from apps.orchestration.worktrees import gitops, worktree_remove
from apps.projects.models import Task
from apps.projects.services import task_transition

TaskStatus = Task.Status


def _check_idle(worktree: Worktree) -> None:
    if not worktree.is_live:
        raise ConflictError(f"worktree {worktree.branch} is {worktree.status}", code="worktree_not_live")
    session = AgentSession.objects.filter(project=worktree.project_id, workdir=worktree.path,
                                          status__in=OPEN_SESSIONS).select_related("task").first()
    if session is not None:
        raise ConflictError(f"session #{session.pk} ({session.task.key if session.task_id else session.kind}) is "
                            f"{session.status} in {worktree.branch}; let it finish or cancel it first",
                            code="worktree_busy")


def worktree_merge_request(*, worktree: Worktree, side: str | None = None) -> MergeResult:
    """A person merges a worktree now, or resolves its conflict (`side` ours/theirs); the run goes on after.

    The same durable path as the workers': a task whose verified work was never queued for the merge (its worker
    died) is verified and committed first, and a merge that already reached main is only completed."""
    if side == "manual":
        raise ConflictError(f"resolve by hand: in {worktree.path} run `git merge {worktree.project.default_branch}`"
                            ", fix the conflicting files, commit, then merge this worktree again",
                            code="manual_resolution", details={"path": worktree.path,
                                                               "files": worktree.conflict_files})
    task = worktree.task
    unfinished = task is not None and task.status in ACTIVE_TASKS
    if not (unfinished and worktree.status == Worktree.Status.MERGED):
        _check_idle(worktree)
    merge_lease_refuse(worktree, worktree.branch)
    if unfinished and side is None and (task.pk not in worktree.merge_task_ids or not worktree.is_live):
        task_finish(task=task)
        result = _result_of(worktree, task)
    else:
        result = merge_worktree(worktree=worktree, side=side)
    audit_record(action=AuditAction.WORKTREE_MERGED, target=f"worktree {worktree.branch}", project=worktree.project,
                 details={"side": side or "", "merged": result.merged, "conflict_files": result.conflict_files,
                          "failures": result.failures})
    project_kick(project=worktree.project)
    return result


def _result_of(worktree: Worktree, task: Task) -> MergeResult:
    worktree.refresh_from_db()
    task.refresh_from_db()
    if task.status == TaskStatus.DONE:
        head = gitops.branch_tip(Path(worktree.project.repo_path), worktree.project.default_branch) or ""
        return MergeResult(merged=head, done=[task.key])
    if worktree.conflict_files:
        return MergeResult(conflict_files=list(worktree.conflict_files))
    return MergeResult(failures=[task.last_error or f"task {task.key} is {task.status}"])


def worktree_delete(*, worktree: Worktree, force: bool = False) -> Worktree:
    """Remove a worktree and its branch — a person discarding its work, so it is audited with the branch tip and
    whether that tip was on the default branch. Tasks whose verified work waited in it are queued again (ready)."""
    _check_idle(worktree)
    merge_lease_refuse(worktree, worktree.branch)
    repo = Path(worktree.project.repo_path)
    tip = gitops.branch_tip(repo, worktree.branch)
    merged = bool(tip) and gitops.is_ancestor(repo, tip, of=worktree.project.default_branch)
    worktree_remove(worktree=worktree, force=force)
    audit_record(action=AuditAction.WORKTREE_DISCARDED, target=f"worktree {worktree.branch}",
                 project=worktree.project_id, details={"tip": tip or "", "tip_on_default_branch": merged,
                                                      "force": force, "tasks": worktree.merge_task_ids})
    for task in Task.objects.filter(pk__in=worktree.merge_task_ids, status__in=(TaskStatus.MERGING,
                                                                                 TaskStatus.PAUSED)):
        if task.status == TaskStatus.MERGING:
            task = task_transition(task=task, to=TaskStatus.FAILED, error="its worktree was removed")
        task_transition(task=task, to=TaskStatus.READY, error="its worktree was removed before merging")
    return worktree
