"""Done means merged: a worktree's committed work goes into the default branch under the project's repository lock,
the tasks' acceptance tests re-run on the merged result, and only then are the tasks done.

A merge that would conflict is detected first (`git merge-tree`), so nothing is half-merged: the tasks pause with
the conflicting files and their dependents wait. If the tests fail on the merged result the merge is undone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.agents.models import AgentSession
from apps.agents.sandbox import run_command, scrubbed_env
from apps.core.errors import SandboxError, YokeFlowError
from apps.interventions.models import PauseType
from apps.interventions.services import pause_open, pauses_close
from apps.orchestration.models import Worktree
from apps.orchestration.repository import git_out
from apps.orchestration.worktrees import gitops, repo_lock, session_home, worktree_remove
from apps.projects.models import Epic, Task, TestResult
from apps.projects.services import task_transition

MAX_EVIDENCE_CHARS = 20_000
TaskStatus = Task.Status


@dataclass
class MergeResult:
    merged: str = ""  # the default branch's new HEAD
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
            test.result, test.evidence = _acceptance_one(test.command, Path(workdir), home)
            if test.result != test.Result.PASSED:
                failures.append(f"{task.key}: acceptance test failed: {test.description} (`{test.command}`)")
        test.last_run_at = timezone.now()
        test.save(update_fields=["result", "evidence", "last_run_at", "updated"])
    return failures


def _acceptance_one(command: str, workdir: Path, home: Path) -> tuple[str, str]:
    try:
        result = run_command(command, cwd=workdir, timeout=float(settings.COMMAND_TIMEOUT),
                             env=scrubbed_env(home=str(home)))
    except SandboxError as exc:  # e.g. the plan's command is refused by the sandbox policy
        return TestResult.ERROR, f"not run: {exc.message}"
    evidence = f"[{workdir.name}] " + result.as_text()
    return (TestResult.PASSED if result.ok else TestResult.FAILED), evidence[-MAX_EVIDENCE_CHARS:]


# ------------------------------------------------------------------------------------------------ completion


def task_complete(*, task: Task) -> bool:
    """merging → done, then complete the epic if this was its last open task. True when the epic completed.

    The epic row is locked *before* the task moves, so concurrent completions in one epic run one after another
    and exactly one of them sees every task done.
    """
    with transaction.atomic():
        epic = Epic.objects.select_for_update().get(pk=task.epic_id)
        task_transition(task=task, to=TaskStatus.DONE, error="")
        if epic.status == Epic.Status.DONE or epic.tasks.exclude(status__in=(TaskStatus.DONE, TaskStatus.CANCELLED)
                                                                   ).exists():
            return False
        return Epic.objects.filter(pk=epic.pk).exclude(status=Epic.Status.DONE).update(
            status=Epic.Status.DONE, updated=timezone.now()) == 1


# ------------------------------------------------------------------------------------------------ merging


def merge_message(worktree: Worktree, tasks: list[Task]) -> str:
    keys = ", ".join(t.key for t in tasks) or worktree.branch
    titles = "\n".join(f"- {t.key}: {t.title}" for t in tasks)
    trailers = "".join(f"YokeFlow-Task: {t.key}\n" for t in tasks)
    return f"Merge {keys} ({worktree.branch})\n\n{titles}\n\n{trailers}"


def merge_worktree(*, worktree: Worktree, side: str | None = None) -> MergeResult:
    """Merge the worktree's branch into the default branch (or resolve its conflict taking `side`), re-run the
    waiting tasks' acceptance tests on the result, and mark them done; remove the worktree afterwards."""
    project = worktree.project
    repo = Path(project.repo_path)
    with repo_lock(project):
        worktree.refresh_from_db()  # another worker may have merged it while we waited for the lock
        if not worktree.is_live:
            return MergeResult(failures=[f"{worktree.branch} is already {worktree.status}"])
        tasks = _waiting_tasks(worktree)
        result = _merge_locked(worktree, tasks, repo, side)
    if result.ok:
        for task in tasks:
            for session in AgentSession.objects.filter(task=task, pauses__resolved=False).distinct():
                pauses_close(session=session, by="merge", notes=f"{worktree.branch} merged as {result.merged[:12]}")
            if task_complete(task=task):
                result.epics_completed.append(task.epic.key)
            result.done.append(task.key)
        _cleanup(worktree)
    return result


def _waiting_tasks(worktree: Worktree) -> list[Task]:
    tasks = list(Task.objects.filter(pk__in=worktree.merge_task_ids).select_related("epic").order_by("position"))
    for task in tasks:
        if task.status == TaskStatus.PAUSED:  # paused on this worktree's conflict: merging again
            task_transition(task=task, to=TaskStatus.MERGING)
    return [t for t in tasks if t.status == TaskStatus.MERGING]


def _merge_locked(worktree: Worktree, tasks: list[Task], repo: Path, side: str | None) -> MergeResult:
    project = worktree.project
    before = git_out(repo, "rev-parse", "HEAD").strip()
    try:
        message = merge_message(worktree, tasks)
        if side:
            head = gitops.resolve(repo, worktree.branch, into=project.default_branch, side=side, message=message)
        else:
            head = gitops.merge(repo, worktree.branch, into=project.default_branch,
                                strategy=project.merge_strategy, message=message)
    except gitops.WorktreeConflictError as exc:
        _pause(worktree, tasks, f"merge_conflict: merging {worktree.branch} into {project.default_branch} would "
                                f"conflict in {', '.join(exc.files)}", conflict_files=exc.files)
        return MergeResult(conflict_files=exc.files)
    except YokeFlowError as exc:
        _pause(worktree, tasks, f"merge_failed: {exc.message}")
        return MergeResult(failures=[exc.message])
    failures = [failure for task in tasks for failure in acceptance_run(task=task, workdir=repo)]
    _restore(repo, head if not failures else before)
    if failures:
        _pause(worktree, tasks, "acceptance tests failed on the merged result, so the merge was undone: "
                                + "; ".join(failures))
        return MergeResult(failures=failures)
    Worktree.objects.filter(pk=worktree.pk).update(
        status=Worktree.Status.MERGED, merge_commit=head, merged_at=timezone.now(), conflict_files=[],
        updated=timezone.now())
    worktree.refresh_from_db()
    return MergeResult(merged=head)


def _restore(repo: Path, head: str) -> None:
    """Leave the default branch's working copy exactly at `head`: tests may have written or changed files."""
    git_out(repo, "reset", "-q", "--hard", head)
    git_out(repo, "clean", "-q", "-f", "-d")  # untracked only; ignored files such as .env stay


def _pause(worktree: Worktree, tasks: list[Task], reason: str, conflict_files: list[str] | None = None) -> None:
    status = Worktree.Status.CONFLICT if conflict_files else Worktree.Status.ACTIVE
    Worktree.objects.filter(pk=worktree.pk).update(status=status, conflict_files=conflict_files or [],
                                                   updated=timezone.now())
    worktree.refresh_from_db()
    for task in tasks:
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


def _cleanup(worktree: Worktree) -> None:
    """A merged worktree's directory and branch go; the row stays as history. Failure here loses nothing."""
    try:
        worktree_remove(worktree=worktree, force=True, status=Worktree.Status.MERGED)
    except YokeFlowError as exc:
        Worktree.objects.filter(pk=worktree.pk).update(setup_log=f"{worktree.setup_log}\ncleanup failed: "
                                                                 f"{exc.message}"[-MAX_EVIDENCE_CHARS:])
