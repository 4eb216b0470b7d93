"""Running one task's session and settling it: the agent in its worktree, then verify, commit and merge (through
`merging.py`), or retry, pause or fail. `task_finish` is the one path that finishes a task, whoever calls it."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import F

from apps.agents.coding import coding_session_run
from apps.agents.loop_types import LoopState, Outcome
from apps.agents.models import AgentSession
from apps.agents.providers import provider_for
from apps.agents.services import session_transition
from apps.core.context import current
from apps.core.db import is_connection_error
from apps.core.errors import ConflictError, YokeFlowError
from apps.interventions.detectors import guards_for
from apps.interventions.models import PausedSession, PauseType
from apps.interventions.services import pause_open
from apps.learning.domains import classify_domain
from apps.learning.selectors import expertise_for_prompt
from apps.orchestration.merge_lease import merge_lease, worktree_of_task
from apps.orchestration.merging import acceptance_run, merge_worktree, worktree_cleanup
from apps.orchestration.models import ParallelBatch, Worktree
from apps.orchestration.runs import enqueue, session_pause_record
from apps.orchestration.scheduler import ACTIVE_TASKS, schedule
from apps.orchestration.worktrees import branch_for, gitops, path_for, session_home, worktree_env, worktree_prepare
from apps.projects.models import Project, Task
from apps.projects.services import task_transition

TaskStatus = Task.Status
SessionStatus = AgentSession.Status
log = logging.getLogger("yokeflow.scheduler")


def task_session_execute(*, session: AgentSession, resume_message: str | None = None, force: bool = False) -> None:
    """The job of one claimed task: prepare its worktree, run (or continue) its session, settle it, schedule on."""
    session.refresh_from_db()
    task = Task.objects.select_related("project", "epic").get(pk=session.task_id)
    project = task.project
    if session.is_finished:  # a redelivered job, or one whose worker lost the database: finish what is left
        task_finish(task=task)
        schedule(project_id=project.pk)
        return
    shared = Path(session.workdir) == path_for(project, branch_for(task, shared_by_epic=True))
    try:
        worktree = worktree_prepare(task=task, shared_by_epic=shared)
    except YokeFlowError as exc:
        _fail_before_start(session, task, exc)
        schedule(project_id=project.pk)
        return
    if session.workdir != worktree.path:  # e.g. a session made by hand: the agent works where the merge looks
        AgentSession.objects.filter(pk=session.pk).update(workdir=worktree.path)
        session.workdir = worktree.path
    outcome = _run_session(session, task, worktree, resume_message, force)
    if outcome is not None:
        task_finish(task=task, outcome=outcome)
        enqueue("apps.learning.jobs.learn", session.pk)
    if shared:
        batch_merge_if_barrier(project=project)
    schedule(project_id=project.pk)


def task_finish(*, task: Task, outcome: Outcome | None = None) -> None:
    """Finish what a task's ended session left — settle it, verify and commit it, merge it (ready strategy), clean
    up — under its worktree's merge lease. Repeatable from any step: the session's own job, the reaper, `retry`
    and the merge endpoint all come here, and only one of them works at a time."""
    task.refresh_from_db()
    session = task.sessions.order_by("-pk").first()
    worktree = worktree_of_task(task, session)
    if worktree is None:
        if task.status in ACTIVE_TASKS and (session is None or session.is_finished):
            task_failed(task=task, reason="its worktree is gone")
        return
    with merge_lease(worktree) as held:
        if not held:
            return  # a live worker is finishing it
        task.refresh_from_db()
        worktree.refresh_from_db()
        _finish_step(task, session, worktree, outcome)


def _finish_step(task: Task, session: AgentSession | None, worktree: Worktree, outcome: Outcome | None) -> None:
    own = worktree.task_id == task.pk
    if task.status == TaskStatus.RUNNING and session is not None:
        session.refresh_from_db()
        if outcome is not None or session.is_finished:  # the session's own job knows its outcome (e.g. paused)
            task_settle(task=task, session=session, outcome=outcome or _finished_outcome(session), worktree=worktree)
    elif task.status == TaskStatus.MERGING and own and worktree.status == Worktree.Status.MERGED:
        merge_worktree(worktree=worktree)  # merged on main: only the completion and the clean-up are left
    elif task.status == TaskStatus.MERGING and own and worktree.is_live:
        _verify_and_merge(task, session, outcome or _finished_outcome(session), worktree)
    elif task.status == TaskStatus.DONE and own and worktree.status == Worktree.Status.MERGED:
        worktree_cleanup(worktree=worktree)


def _finished_outcome(session: AgentSession | None) -> Outcome:
    if session is None:
        return Outcome(SessionStatus.COMPLETED, "done", "")
    checkpoint = getattr(session, "checkpoint", None)
    state = dict((checkpoint.step or {}).get("state") or {}) if checkpoint else {}
    return Outcome(session.status, session.stop_reason, session.error, state)


def _fail_before_start(session: AgentSession, task: Task, exc: YokeFlowError) -> None:
    if session.status == SessionStatus.QUEUED:
        session_transition(session=session, status=SessionStatus.FAILED, stop_reason="worktree",
                           error=exc.message[:2000])
    task.refresh_from_db()
    if task.status == TaskStatus.RUNNING:
        task_failed(task=task, reason=f"{exc.code}: {exc.message}")


def _run_session(session: AgentSession, task: Task, worktree: Worktree, resume_message: str | None,
                 force: bool) -> Outcome | None:
    provider = provider_for(project_slug=task.project.slug, script=task.key)
    guards, hooks = guards_for(account=provider.account, project_id=task.project_id)
    expertise = expertise_for_prompt(project=task.project, domain=session.task_type or classify_domain(task))
    try:
        return coding_session_run(session=session, branch=worktree.branch, env=worktree_env(worktree),
                                  home=session_home(Path(worktree.path)), expertise=expertise, provider=provider,
                                  guards=guards, hooks=[*hooks, _commit_hook(task, session, worktree)],
                                  resume_message=resume_message, force=force)
    except ConflictError as exc:
        if exc.code == "session_leased":  # another worker holds it (e.g. a redelivered job): leave it alone
            return None
        raise
    except Exception as exc:
        if not (isinstance(exc, DatabaseError) and is_connection_error(exc)):  # with no database, nothing settles
            _settle_after_crash(session, worktree)
        raise


def _commit_hook(task: Task, session: AgentSession, worktree: Worktree) -> Callable[[str, LoopState], None]:
    """Commit the agent's work on its branch before its session counts as completed: a crash after that point
    cannot lose it (the merge commits again whatever the acceptance tests leave behind)."""
    def hook(phase: str, state: LoopState) -> None:
        if phase == "completing":
            gitops.worktree_commit(Path(worktree.path), _commit_message(task, session, Outcome(
                SessionStatus.COMPLETED, "done", "", state.context.state)))
    return hook


def _settle_after_crash(session: AgentSession, worktree: Worktree) -> None:
    session.refresh_from_db()
    if session.status != SessionStatus.RUNNING:
        task_finish(task=Task.objects.get(pk=session.task_id))


def task_settle(*, task: Task, session: AgentSession, outcome: Outcome, worktree: Worktree) -> None:
    """Turn a session's outcome into the task's status: verified work is committed and merged (ready strategy)
    or left merging until the batch's barrier (batch strategy)."""
    if outcome.status == SessionStatus.RUNNING or task.status != TaskStatus.RUNNING:
        return  # another worker took the session over, or someone moved the task meanwhile
    if not outcome.completed:
        reason = f"{outcome.reason}: {outcome.message}".strip(": ")
        if outcome.status == SessionStatus.PAUSED:
            task_transition(task=task, to=TaskStatus.PAUSED, error=reason)  # its work stays in the worktree
            session_pause_record(session=session, outcome=outcome)
        elif outcome.status == SessionStatus.CANCELLED:
            task_transition(task=task, to=TaskStatus.CANCELLED, error=reason)
        else:
            task_failed(task=task, reason=reason)
        return
    task = task_transition(task=task, to=TaskStatus.MERGING)
    _verify_and_merge(task, session, outcome, worktree)


def _verify_and_merge(task: Task, session: AgentSession | None, outcome: Outcome, worktree: Worktree) -> None:
    """A merging task: acceptance tests in its worktree, commit, queue it for the merge, merge (ready strategy).
    A task already queued in the worktree (a resumed merge) goes straight to the merge."""
    if task.pk not in worktree.merge_task_ids:
        try:
            failures = acceptance_run(task=task, workdir=Path(worktree.path))
            if not failures:
                gitops.worktree_commit(Path(worktree.path), _commit_message(task, session, outcome))
        except YokeFlowError as exc:  # git trouble: the attempt fails with the reason instead of hanging in merging
            failures = [f"{exc.code}: {exc.message}"]
        if failures:
            task_failed(task=task, reason="not done: " + "; ".join(failures))
            return
        _wait_for_merge(worktree, task)
    if worktree.task_id is not None:  # its own worktree: merge now
        result = merge_worktree(worktree=worktree)
        if not result.ok:
            log.warning("task %s did not merge: %s", task.key, "; ".join(result.failures) or "a conflict")


def _wait_for_merge(worktree: Worktree, task: Task) -> None:
    with transaction.atomic():
        row = Worktree.objects.select_for_update().get(pk=worktree.pk)
        if task.pk not in row.merge_task_ids:
            row.merge_task_ids = [*row.merge_task_ids, task.pk]
            row.save(update_fields=["merge_task_ids", "updated"])
    worktree.merge_task_ids = row.merge_task_ids


def _commit_message(task: Task, session: AgentSession | None, outcome: Outcome) -> str:
    evidence = str(outcome.state.get("reported", {}).get("evidence", "")).strip()
    body = f"\n\n{evidence[:2000]}" if evidence else ""
    who = (f"YokeFlow-Session: {session.pk}\nYokeFlow-Model: {session.model_label}\n" if session is not None
           else "")
    return (f"{task.key}: {task.title}{body}\n\nYokeFlow-Task: {task.key}\n{who}"
            f"YokeFlow-Correlation-Id: {current().correlation_id}\n")


def task_failed(*, task: Task, reason: str) -> Task:
    """Count a failed or lost attempt: the task goes back to ready, or pauses once it reached the limit."""
    Task.objects.filter(pk=task.pk).update(attempts=F("attempts") + 1)
    task.refresh_from_db(fields=["attempts"])
    if task.attempts >= settings.TASK_MAX_ATTEMPTS:
        task = task_transition(task=task, to=TaskStatus.PAUSED,
                               error=f"failed {task.attempts} times (limit {settings.TASK_MAX_ATTEMPTS}); "
                                     f"last: {reason}")
        attempts_exhausted(task=task, reason=reason)
        return task
    if task.status != TaskStatus.FAILED:
        task = task_transition(task=task, to=TaskStatus.FAILED, error=reason)
    return task_transition(task=task, to=TaskStatus.READY, error=reason)


def attempts_exhausted(*, task: Task, reason: str) -> PausedSession | None:
    """The task used up its attempts: an intervention on its last session (people are told, it shows on the
    interventions page and the API). Resuming it gives the task fresh attempts, with the person's notes in the
    next attempt's prompt (`receivers.pause_continue`)."""
    sessions = AgentSession.objects.filter(task=task).order_by("-pk")
    last = sessions.first()
    if last is None:
        return None
    errors = [{"session": s.pk, "error": (s.error or s.stop_reason or "")[:500]} for s in sessions[:5]]
    return pause_open(session=last, pause_type=PauseType.ATTEMPTS_EXHAUSTED,
                      reason=f"{task.key} failed {task.attempts} times (limit {settings.TASK_MAX_ATTEMPTS}); "
                             f"last: {reason}"[:4000],
                      blocker_info={"attempts": task.attempts, "task": task.key, "errors": errors,
                                    "advice": "Read the errors, fix what blocks the task (or its tests), then "
                                              "resume with notes: the task gets fresh attempts and the notes."})


def task_resume_attempts(*, task: Task, by: str, notes: str) -> Task:
    """A person resumed an attempts_exhausted pause: fresh attempts, their notes kept for the next prompt."""
    note = f"\n\nNotes from {by}: {notes.strip()}" if notes.strip() else ""
    Task.objects.filter(pk=task.pk).update(attempts=0)
    task.refresh_from_db()
    if task.status == TaskStatus.PAUSED:
        task = task_transition(task=task, to=TaskStatus.READY, error=f"{task.last_error}{note}"[:10_000])
    return task


def batch_merge_if_barrier(*, project: Project) -> list[str]:
    """Batch strategy: once nothing of the current batch runs, merge its epics' worktrees (in plan order)."""
    batch = project.batches.exclude(status=ParallelBatch.Status.COMPLETED).order_by("number").first()
    if batch is None:
        return []
    states = Counter(Task.objects.filter(pk__in=batch.task_ids).values_list("status", flat=True))
    if states[TaskStatus.RUNNING] or states[TaskStatus.READY] or not states[TaskStatus.MERGING]:
        return []
    merged = []
    waiting = Worktree.objects.filter(project=project, status=Worktree.Status.ACTIVE).select_related("project")
    for worktree in waiting.order_by("epic__position"):
        if worktree.merge_task_ids and merge_worktree(worktree=worktree).ok:
            merged.append(worktree.branch)
    return merged
