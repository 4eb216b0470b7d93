"""Done means merged, durably: a worktree's work reaches the default branch through recorded, repeatable steps.

    committed → verified → merged → done → cleaned          (`Worktree.merge_step`)

1. *committed*: whatever is in the worktree is committed on its branch; the branch tip is recorded.
2. *verified*: under the project's repository lock, the merge commit is built on a detached HEAD at the default
   branch's tip (conflicts are detected first with `git merge-tree`), and the waiting tasks' acceptance tests run
   on it. The default branch has not moved: a crash here leaves it as it was.
3. *merged*: the default branch moves to the tested commit in one compare-and-swap (`git update-ref`).
4. *done*: the tasks are marked done (and their epics completed).
5. *cleaned*: the worktree and branch are removed — only when the branch tip is on the default branch.

Every step finds out from git and the database what is already done: the merge commit carries the branch tip in a
`YokeFlow-Branch-Tip` trailer, so a run cut off after the branch moved records *that* commit, never another
task's. The worker doing it holds a lease on the worktree row (`merge_owner`, renewed while tests run); when it
dies the lease expires and the reaper resumes the merge elsewhere. A conflict, a failed test on the merged result
or a git failure pauses the tasks with the reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.agents.models import AgentSession
from apps.agents.sandbox import run_command, scrubbed_env
from apps.core.context import current
from apps.core.errors import SandboxError, YokeFlowError
from apps.core.faults import fault_point
from apps.core.retry import db_retry
from apps.interventions.models import PauseType
from apps.interventions.services import pause_open, pauses_close
from apps.orchestration.merge_lease import merge_lease
from apps.orchestration.models import MergeStep, Worktree
from apps.orchestration.worktrees import (
    gitmerge,
    gitops,
    repo_lock,
    session_home,
    worktree_remove,
    worktree_status_move,
)
from apps.projects.models import Epic, Project, Task, TestResult
from apps.projects.services import epic_status_move, task_transition

MAX_EVIDENCE_CHARS = 20_000
TaskStatus = Task.Status
log = logging.getLogger("yokeflow.merging")


@dataclass
class MergeResult:
    merged: str = ""  # the default branch's HEAD once the work is on it
    done: list[str] = field(default_factory=list)
    conflict_files: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    epics_completed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.merged) and not self.conflict_files and not self.failures


# ------------------------------------------------------------------------------------------------ acceptance


def acceptance_run(*, task: Task, workdir: Path) -> list[str]:
    """Run the task's acceptance commands in `workdir`; store result and evidence; return the failures."""
    failures = []
    home = session_home(Path(workdir))
    for test in task.tests.order_by("position"):
        if not test.command.strip():
            test.result, test.evidence = test.Result.PENDING, "no command given: not verified automatically"
        else:
            test.result, test.evidence = _acceptance_one(test.command, Path(workdir), home, task.project.network)
            if test.result != test.Result.PASSED:
                failures.append(f"{task.key}: acceptance test failed: {test.description} (`{test.command}`)")
        test.last_run_at = timezone.now()
        test.save(update_fields=["result", "evidence", "last_run_at", "updated"])
    return failures


def _acceptance_one(command: str, workdir: Path, home: Path, network: str) -> tuple[str, str]:
    try:
        result = run_command(command, cwd=workdir, timeout=float(settings.COMMAND_TIMEOUT),
                             env=scrubbed_env(home=str(home)), network=network)
    except SandboxError as exc:  # e.g. the plan's command is refused by the sandbox policy
        return TestResult.ERROR, f"not run: {exc.message}"
    evidence = f"[{workdir.name}] " + result.as_text()
    return (TestResult.PASSED if result.ok else TestResult.FAILED), evidence[-MAX_EVIDENCE_CHARS:]


# ------------------------------------------------------------------------------------------------ completion


@db_retry.atomic
def task_complete(*, task: Task) -> bool:
    """merging → done, then complete the epic if this was its last open task. True when the epic completed.

    Locks in the one order every writer uses (project, then epic, then the task's conditional update), with
    FOR NO KEY UPDATE so the deferred foreign-key checks of the events written alongside never wait on them.
    Concurrent completions in one epic run one after another and exactly one of them sees every task done.
    """
    Project.objects.select_for_update(no_key=True).filter(pk=task.project_id).first()
    epic = Epic.objects.select_for_update(no_key=True).get(pk=task.epic_id)
    task.refresh_from_db()
    if task.status == TaskStatus.DONE:
        return False  # a resumed merge finds it done already
    task_transition(task=task, to=TaskStatus.DONE, error="")
    if epic.tasks.exclude(status__in=(TaskStatus.DONE, TaskStatus.CANCELLED)).exists():
        return False
    return epic_status_move(epic=epic, to=Epic.Status.DONE)


# ------------------------------------------------------------------------------------------------ merging


def merge_message(worktree: Worktree, tasks: list[Task], tip: str) -> str:
    keys = ", ".join(t.key for t in tasks) or worktree.branch
    titles = "\n".join(f"- {t.key}: {t.title}" for t in tasks)
    trailers = "".join(f"YokeFlow-Task: {t.key}\n" for t in tasks)
    trace = f"YokeFlow-Correlation-Id: {current().correlation_id}\n" if current().correlation_id else ""
    return f"Merge {keys} ({worktree.branch})\n\n{titles}\n\n{trailers}{trace}{gitmerge.TIP_TRAILER}: {tip}\n"


def merge_worktree(*, worktree: Worktree, side: str | None = None) -> MergeResult:
    """Merge the worktree's branch into the default branch (or resolve its conflict taking `side`), with the
    waiting tasks' acceptance tests run on the merged result, then mark them done and remove the worktree.

    Repeatable: run again after a crash at any line, it goes on from the last recorded step."""
    with merge_lease(worktree) as held:
        if not held:
            return MergeResult(failures=[f"{worktree.branch} is being merged by {worktree.merge_owner}"])
        project = worktree.project
        with repo_lock(project):
            worktree.refresh_from_db()  # another worker may have merged it while we waited for the lock
            if not (worktree.is_live or worktree.status == Worktree.Status.MERGED):
                return MergeResult(failures=[f"{worktree.branch} is already {worktree.status}"])
            tasks = _waiting_tasks(worktree)
            result = _merge_locked(worktree, tasks, Path(project.repo_path), side)
        if result.ok:
            _finish(worktree, tasks, result)
        return result


def _waiting_tasks(worktree: Worktree) -> list[Task]:
    tasks = list(Task.objects.filter(pk__in=worktree.merge_task_ids).select_related("epic").order_by("position"))
    for task in tasks:
        if task.status == TaskStatus.PAUSED and worktree.is_live:  # paused on this worktree's conflict: again
            task_transition(task=task, to=TaskStatus.MERGING)
    return [t for t in tasks if t.status in (TaskStatus.MERGING, TaskStatus.DONE)]


def _record(worktree: Worktree, status: str | None = None, **fields: object) -> None:
    """Write the merge's progress (and a status move, checked against WORKTREE_TRANSITIONS) in one update."""
    if status is not None:
        db_retry(lambda: worktree_status_move(worktree, status, **fields))
        return
    db_retry(lambda: Worktree.objects.filter(pk=worktree.pk).update(**fields, updated=timezone.now()))
    for name, value in fields.items():
        setattr(worktree, name, value)


def _merge_locked(worktree: Worktree, tasks: list[Task], repo: Path, side: str | None) -> MergeResult:
    into = worktree.project.default_branch
    if worktree.merge_step in (MergeStep.MERGED, MergeStep.DONE, MergeStep.CLEANED):
        return MergeResult(merged=gitmerge.main_restore(repo, into=into))  # only the tasks' completion is left
    try:
        base = gitmerge.main_restore(repo, into=into)
        tip = _commit_step(worktree, repo)
        found = gitmerge.merged_by(repo, tip, into=into)
        if found or gitops.is_ancestor(repo, tip, of=into):  # on main already: a merge cut off, or nothing new
            _record_merged(worktree, found or "")
            return MergeResult(merged=base)
        fault_point("before-merge")
        candidate = _verified_candidate(worktree, tasks, repo, base, tip, side)
        if isinstance(candidate, MergeResult):
            return candidate
        gitmerge.advance(repo, into=into, to=candidate, expected=base)
        fault_point("after-merge")
    except gitops.WorktreeConflictError as exc:
        _pause(worktree, tasks, f"merge_conflict: merging {worktree.branch} into {into} would conflict in "
                                f"{', '.join(exc.files)}", conflict_files=exc.files)
        return MergeResult(conflict_files=exc.files)
    except YokeFlowError as exc:
        _restore_quietly(repo, into)
        _pause(worktree, tasks, f"merge_failed: {exc.message}")
        return MergeResult(failures=[exc.message])
    _record_merged(worktree, candidate)
    return MergeResult(merged=candidate)


def _commit_step(worktree: Worktree, repo: Path) -> str:
    """Commit whatever is left in the worktree (the agent's work must never be lost), record the branch tip."""
    path = Path(worktree.path)
    if path.is_dir():
        gitops.worktree_commit(path, f"{worktree.branch}: work left in the worktree\n\nYokeFlow-Worktree: "
                                     f"{worktree.pk}\n")
    tip = gitops.branch_tip(repo, worktree.branch)
    if tip is None:
        raise YokeFlowError(f"the branch {worktree.branch} is gone", code="branch_missing")
    if tip != worktree.merge_tip or not worktree.merge_step:
        _record(worktree, merge_step=MergeStep.COMMITTED, merge_tip=tip, merge_candidate="")
    fault_point("after-commit")
    return tip


def _verified_candidate(worktree: Worktree, tasks: list[Task], repo: Path, base: str, tip: str,
                        side: str | None) -> str | MergeResult:
    """The merge commit, tested on top of `base`: one recorded by a run cut off just before moving the branch is
    used again; otherwise it is built and the tasks' acceptance tests run on it (the branch stays at `base`)."""
    into = worktree.project.default_branch
    if worktree.merge_step == MergeStep.VERIFIED and worktree.merge_candidate and not side and \
            _parents(repo, worktree.merge_candidate)[:1] == [base]:
        return worktree.merge_candidate
    candidate = gitmerge.merge_candidate(repo, worktree.branch, into=into, strategy=worktree.project.merge_strategy,
                                       side=side, message=merge_message(worktree, tasks, tip))
    failures = [failure for task in tasks for failure in acceptance_run(task=task, workdir=repo)]
    if failures:
        gitmerge.main_restore(repo, into=into)
        _pause(worktree, tasks, "acceptance tests failed on the merged result, so it was not merged: "
                                + "; ".join(failures))
        return MergeResult(failures=failures)
    _record(worktree, merge_step=MergeStep.VERIFIED, merge_candidate=candidate)
    fault_point("after-tests-on-main")
    return candidate


def _parents(repo: Path, commit: str) -> list[str]:
    try:
        return gitops.parents(repo, commit)
    except YokeFlowError:
        return []  # e.g. a candidate garbage-collected since: build it again


def _record_merged(worktree: Worktree, commit: str) -> None:
    _record(worktree, status=Worktree.Status.MERGED, merge_step=MergeStep.MERGED, merge_commit=commit,
            merged_at=worktree.merged_at or timezone.now(), conflict_files=[])


def _restore_quietly(repo: Path, into: str) -> None:
    try:
        gitmerge.main_restore(repo, into=into)
    except YokeFlowError as exc:  # the next merge restores it again; the pause says what failed first
        log.warning("could not restore %s after a failed merge: %s", repo, exc.message)


def _finish(worktree: Worktree, tasks: list[Task], result: MergeResult) -> None:
    fault_point("before-done")
    for task in tasks:
        for session in AgentSession.objects.filter(task=task, pauses__resolved=False).distinct():
            pauses_close(session=session, by="merge", notes=f"{worktree.branch} merged as {result.merged[:12]}")
        if task_complete(task=task):
            result.epics_completed.append(task.epic.key)
        result.done.append(task.key)
    if worktree.merge_step == MergeStep.MERGED:
        _record(worktree, merge_step=MergeStep.DONE)
    worktree_cleanup(worktree=worktree)


def _pause(worktree: Worktree, tasks: list[Task], reason: str, conflict_files: list[str] | None = None) -> None:
    status = Worktree.Status.CONFLICT if conflict_files else Worktree.Status.ACTIVE
    with transaction.atomic():
        _record(worktree, status=status, conflict_files=conflict_files or [])
        for task in tasks:
            if task.status == TaskStatus.MERGING:
                task_transition(task=task, to=TaskStatus.PAUSED, error=reason)
                _pause_record(worktree, task, reason)


def _pause_record(worktree: Worktree, task: Task, reason: str) -> None:
    """The pause a person sees (and is told about), on the session whose verified work cannot merge."""
    session = AgentSession.objects.filter(task=task, status=AgentSession.Status.COMPLETED).order_by("-pk").first()
    if session is None:
        return
    pause_type = PauseType.MERGE_CONFLICT if worktree.conflict_files else PauseType.MANUAL
    pause_open(session=session, pause_type=pause_type, reason=reason, blocker_info={
        "branch": worktree.branch, "worktree_id": worktree.pk, "files": worktree.conflict_files,
        "advice": "resolve it (POST /api/worktrees/{id}/resolve ours|theirs, or by hand in the worktree), or "
                  "resume this pause once the branch merges cleanly"})


# ------------------------------------------------------------------------------------------------ cleaning up


def worktree_cleanup(*, worktree: Worktree) -> bool:
    """Remove a merged worktree's directory and branch (the row stays as history) — only when the branch tip is on
    the default branch and nothing uncommitted is left. Failure here loses nothing; True when removed."""
    if worktree.merge_step == MergeStep.CLEANED:
        return True
    project, repo = worktree.project, Path(worktree.project.repo_path)
    try:
        keep = _reason_to_keep(worktree, repo, project.default_branch)
        if keep:
            _note(worktree, f"kept after the merge: {keep}")
            return False
        fault_point("during-cleanup")
        worktree_remove(worktree=worktree, force=True, status=Worktree.Status.MERGED)
    except YokeFlowError as exc:
        _note(worktree, f"cleanup failed: {exc.message}")
        return False
    _record(worktree, merge_step=MergeStep.CLEANED)
    return True


def _reason_to_keep(worktree: Worktree, repo: Path, into: str) -> str:
    tip = gitops.branch_tip(repo, worktree.branch)
    if tip is not None and not (gitops.is_ancestor(repo, tip, of=into) or gitmerge.merged_by(repo, tip, into=into)):
        return f"its branch tip {tip[:12]} is not on {into}"
    path = Path(worktree.path)
    if path.is_dir() and gitops.worktree_status(path, base=into)["dirty"]:
        return "it has uncommitted changes"
    return ""


def _note(worktree: Worktree, line: str) -> None:
    log.warning("worktree %s: %s", worktree.branch, line)
    _record(worktree, setup_log=f"{worktree.setup_log}\n{line}"[-MAX_EVIDENCE_CHARS:])
