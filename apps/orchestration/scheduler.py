"""The scheduler: fills a project's concurrency slots with ready tasks, each in its own worktree.

Event-driven: `schedule` runs when a run starts and whenever a task's job ends (no polling loop). It claims ready
tasks into free slots with a conditional update (and `SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL), creates a
session per claim and queues its job after commit. Two strategies:

- `ready` (default): a task starts the moment its hard dependencies are done; each task has its own worktree and
  is merged as soon as it is verified.
- `batch`: Kahn batches run one after another; the tasks of one epic in a batch share the epic's worktree (one at
  a time), and the batch's worktrees are merged at the barrier, when nothing in the batch runs any more.

A failed or lost attempt is retried up to `TASK_MAX_ATTEMPTS` times, then the task pauses. The reaper (a django-q2
schedule) re-queues sessions whose heartbeat lease expired, from their checkpoint.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import Schedule

from apps.agents.coding import coding_session_run
from apps.agents.loop_types import LoopState, Outcome
from apps.agents.models import AgentSession, SessionKind, lease_cutoff
from apps.agents.providers import provider_account, provider_for, provider_name
from apps.agents.services import events_append, session_create, session_request_cancel, session_transition
from apps.core.audit import audit_record
from apps.core.context import current
from apps.core.db import is_connection_error
from apps.core.errors import ConflictError, YokeFlowError
from apps.core.models import AuditAction
from apps.core.retry import db_retry
from apps.interventions.detectors import guards_for
from apps.interventions.holds import hold_active, holds_release
from apps.interventions.selectors import budget_paused
from apps.interventions.services import pauses_close
from apps.learning.domains import classify_domain
from apps.learning.expertise import expertise_for_prompt
from apps.learning.model_selector import recommend_model
from apps.orchestration.merging import (
    QUEUED,
    MergeResult,
    acceptance_run,
    merge_lease,
    merge_lease_refuse,
    merge_worktree,
    worktree_cleanup,
    worktree_of_task,
)
from apps.orchestration.models import ParallelBatch, Worktree
from apps.orchestration.repository import repo_ensure
from apps.orchestration.runs import enqueue, session_pause_record, session_requeue, set_project_status
from apps.orchestration.worktrees import (
    branch_for,
    gitops,
    path_for,
    session_home,
    worktree_env,
    worktree_prepare,
    worktree_remove,
    worktrees_reconcile,
)
from apps.projects.events import event_emit
from apps.projects.models import Epic, EventKind, Project, Task
from apps.projects.selectors import project_graph
from apps.projects.services import project_update, task_transition, tasks_refresh_ready

TaskStatus = Task.Status
SessionStatus = AgentSession.Status
ACTIVE_TASKS = (TaskStatus.RUNNING, TaskStatus.MERGING)
OPEN_SESSIONS = (SessionStatus.QUEUED, SessionStatus.RUNNING, SessionStatus.PAUSED)
REAPER_NAME = "yokeflow-reaper"
log = logging.getLogger("yokeflow.scheduler")


# ------------------------------------------------------------------------------------------------ starting


def run_start(*, project: Project, parallel: bool | None = None, max_concurrency: int | None = None,
              strategy: str | None = None) -> Project:
    """Start (or restart) the run: settings applied, worktrees reconciled, batches planned, first claims queued."""
    _check_startable(project)
    queue_check()  # before anything changes: a refused start leaves the project as it was
    options = {"parallel_enabled": parallel, "max_concurrency": max_concurrency, "strategy": strategy}
    options = {name: value for name, value in options.items() if value is not None}
    if options:
        project = project_update(project=project, **options)
    repo_ensure(project)
    worktrees_reconcile(project=project)
    with transaction.atomic():
        project = Project.objects.select_for_update(no_key=True).get(pk=project.pk)
        if project.status == Project.Status.RUNNING:
            raise ConflictError(f"project {project.slug!r} is already running", code="already_running")
        for task in project.tasks.filter(status=TaskStatus.CANCELLED):  # a cancelled run's tasks are to do again
            task_transition(task=task, to=TaskStatus.PENDING)
        set_project_status(project, Project.Status.RUNNING)
        batches_plan(project=project)
        reaper_ensure()
        _schedule_locked(project)
    return project


def _check_startable(project: Project) -> None:
    if not project.tasks.exists():
        raise ConflictError(f"project {project.slug!r} has no plan yet; plan it or import a plan first",
                            code="no_plan")
    if project.status == Project.Status.RUNNING:
        raise ConflictError(f"project {project.slug!r} is already running", code="already_running")
    if not project.tasks.exclude(status=TaskStatus.DONE).exists():
        raise ConflictError(f"every task of {project.slug!r} is already done", code="nothing_to_run")
    paused = project.sessions.filter(status=SessionStatus.PAUSED).select_related("task").first()
    if paused:
        raise ConflictError(f"session #{paused.pk} ({paused.task.key if paused.task else 'planning'}) is paused: "
                            "continue or cancel it first", code="session_paused")


def queue_check() -> int:
    """Backpressure: refuse new runs while the job queue is longer than RUN_QUEUE_LIMIT."""
    size = get_broker().queue_size()
    if size > settings.RUN_QUEUE_LIMIT:
        raise ConflictError(f"the job queue holds {size} jobs (limit {settings.RUN_QUEUE_LIMIT}); new runs are "
                            "refused until the workers catch up — wait, or start more workers",
                            code="queue_full", recoverable=True)
    return size


def batches_plan(*, project: Project) -> list[ParallelBatch]:
    """Record the plan view: one row per Kahn batch with its tasks, marked completed where all are done."""
    ids = dict(project.tasks.values_list("key", "pk"))
    ParallelBatch.objects.filter(project=project).delete()
    rows = [ParallelBatch(project=project, number=n, task_ids=[ids[key] for key in keys])
            for n, keys in enumerate(project_graph(project).batches(), start=1)]
    ParallelBatch.objects.bulk_create(rows)
    batches_refresh(project=project)
    return rows


def batches_refresh(*, project: Project) -> None:
    """Update the open batches' progress from their tasks' statuses (one query for the tasks)."""
    open_batches = list(project.batches.exclude(status=ParallelBatch.Status.COMPLETED))
    wanted = {pk for batch in open_batches for pk in batch.task_ids}
    status = dict(Task.objects.filter(pk__in=wanted).values_list("pk", "status"))
    now = timezone.now()
    for batch in open_batches:
        states = {status.get(pk) for pk in batch.task_ids}
        if states <= {TaskStatus.DONE, TaskStatus.CANCELLED, None}:
            batch.status, batch.completed_at = ParallelBatch.Status.COMPLETED, now
            batch.started_at = batch.started_at or now
        elif states - {TaskStatus.PENDING, TaskStatus.READY} and batch.status == ParallelBatch.Status.PENDING:
            batch.status, batch.started_at = ParallelBatch.Status.RUNNING, now
        else:
            continue
        batch.save(update_fields=["status", "started_at", "completed_at", "updated"])
        _batch_event(project, batch)


def _batch_event(project: Project, batch: ParallelBatch) -> None:
    done = batch.status == ParallelBatch.Status.COMPLETED
    event_emit(project_id=project.pk, kind=EventKind.BATCH_COMPLETE if done else EventKind.BATCH_START,
               batch=batch.number, tasks=len(batch.task_ids))


def reaper_ensure() -> Schedule:
    """The django-q2 schedule that runs the reaper (created once; kept at the configured interval)."""
    schedule, _ = Schedule.objects.update_or_create(
        name=REAPER_NAME, defaults={"func": "apps.orchestration.jobs.reap", "schedule_type": Schedule.MINUTES,
                                    "minutes": settings.REAPER_INTERVAL_MINUTES, "repeats": -1})
    return schedule


# ------------------------------------------------------------------------------------------------ claiming


@db_retry.atomic
def schedule(*, project_id: int) -> list[AgentSession]:
    """Fill the project's free slots with ready tasks; finish the run when nothing is left to do.

    One scheduler at a time per project (its row is locked FOR NO KEY UPDATE: the first lock of the one order every
    writer takes — project, epic, task, worktree — which the foreign-key checks of new rows never wait for)."""
    project = Project.objects.select_for_update(no_key=True).filter(pk=project_id).first()
    if project is None or project.status != Project.Status.RUNNING:
        return []
    return _schedule_locked(project)


def _schedule_locked(project: Project) -> list[AgentSession]:
    if hold_active(account=provider_account()):
        return []  # the provider account is on hold: start nothing (the hold's end schedules again)
    tasks_refresh_ready(project=project)
    batches_refresh(project=project)
    limit = project.max_concurrency if project.parallel_enabled else 1
    free = limit - project.tasks.filter(status=TaskStatus.RUNNING).count()
    if budget_paused(project=project):
        free = 0  # sessions wait for more budget: a new one would pause at its first call (approval schedules)
    sessions = [_start_session(task, project) for task in _claim(project, free)] if free > 0 else []
    if sessions:
        batches_refresh(project=project)  # a batch starts when its first task is claimed
    if not sessions and not project.tasks.filter(status__in=ACTIVE_TASKS).exists():
        _run_finished(project)
    return sessions


def _shared_by_epic(project: Project) -> bool:
    return project.strategy == Project.Strategy.BATCH


def _candidates(project: Project, limit: int) -> list[Task]:
    ready = Task.objects.filter(project=project, status=TaskStatus.READY).select_related("epic", "project")
    if connection.features.has_select_for_update_skip_locked:
        ready = ready.select_for_update(skip_locked=True, of=("self",))
    if not _shared_by_epic(project):
        return list(ready.order_by("priority", "position")[:limit])
    batch = project.batches.exclude(status=ParallelBatch.Status.COMPLETED).order_by("number").first()
    if batch is None:
        return []
    # One running task per epic: they share the epic's worktree (a verified one waits there, committed).
    busy = set(project.tasks.filter(status=TaskStatus.RUNNING).values_list("epic_id", flat=True))
    chosen = []
    for task in ready.filter(pk__in=batch.task_ids).order_by("priority", "position"):
        if task.epic_id not in busy and len(chosen) < limit:
            chosen.append(task)
            busy.add(task.epic_id)
    return chosen


def _claim(project: Project, limit: int) -> list[Task]:
    claimed = []
    for task in _candidates(project, limit):
        try:
            claimed.append(task_transition(task=task, to=TaskStatus.RUNNING))  # conditional: someone may win
        except ConflictError:
            continue
        Epic.objects.filter(pk=task.epic_id, status=Epic.Status.PENDING).update(
            status=Epic.Status.IN_PROGRESS, updated=timezone.now())
    return claimed


def _start_session(task: Task, project: Project) -> AgentSession:
    workdir = path_for(project, branch_for(task, shared_by_epic=_shared_by_epic(project)))
    choice = recommend_model(task=task)
    session = session_create(project=project, kind=SessionKind.CODING, task=task, model=choice.model,
                             provider=provider_name(), workdir=str(workdir), model_tier=choice.tier,
                             model_reason=choice.reason, task_type=choice.task_type)
    enqueue("apps.orchestration.jobs.run_task", session.pk)
    return session


def _run_finished(project: Project) -> None:
    """Nothing runs and nothing can be claimed: the run completed, or it waits for a person."""
    open_tasks = project.tasks.exclude(status__in=(TaskStatus.DONE, TaskStatus.CANCELLED))
    if not open_tasks.exists():
        set_project_status(project, Project.Status.COMPLETED)
    elif open_tasks.filter(status=TaskStatus.FAILED).exists():
        set_project_status(project, Project.Status.FAILED)
    else:
        set_project_status(project, Project.Status.PAUSED)


def project_kick(*, project: Project) -> None:
    """After a person unblocked something (resolved a conflict, continued a session): run on if the run stopped."""
    project.refresh_from_db()
    if project.status in (Project.Status.PAUSED, Project.Status.FAILED):
        set_project_status(project, Project.Status.RUNNING)  # the scheduler finishes it if nothing is left
    schedule(project_id=project.pk)


# ------------------------------------------------------------------------------------------------ running a task


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
        return task_transition(task=task, to=TaskStatus.PAUSED,
                               error=f"failed {task.attempts} times (limit {settings.TASK_MAX_ATTEMPTS}); "
                                     f"last: {reason}")
    if task.status != TaskStatus.FAILED:
        task = task_transition(task=task, to=TaskStatus.FAILED, error=reason)
    return task_transition(task=task, to=TaskStatus.READY, error=reason)


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


# ------------------------------------------------------------------------------------------------ control


def run_cancel(*, project: Project) -> dict[str, int]:
    """Stop the run: queued and paused sessions are cancelled, running ones stop within a turn (their commands
    are killed). Tasks not started stay as they are; `run_start` goes on from there."""
    counts = Counter()
    with transaction.atomic():
        Project.objects.select_for_update(no_key=True).filter(pk=project.pk).first()
        for session in project.sessions.filter(status__in=OPEN_SESSIONS):
            counts[_cancel(session).status] += 1
        set_project_status(project, Project.Status.PAUSED)
        audit_record(action=AuditAction.RUN_CANCELLED, target=f"project {project.slug}", project=project,
                     details={"sessions": dict(counts)})
    return dict(counts)


def session_kill(*, session: AgentSession) -> AgentSession:
    """Cancel a session now: its commands are killed by its worker; a session whose worker is gone (expired
    lease) is ended here and its task cancelled."""
    if session.status == SessionStatus.RUNNING and not session.lease_live:
        with transaction.atomic():
            session = session_transition(session=session, status=SessionStatus.CANCELLED, stop_reason="killed",
                                         error="killed while its worker was gone")
            task = Task.objects.filter(pk=session.task_id, status=TaskStatus.RUNNING).first()
            if task:
                task_transition(task=task, to=TaskStatus.CANCELLED, error="its session was killed")
            _audit_kill(session)
        return session
    with transaction.atomic():
        session = _cancel(session)
        _audit_kill(session)
    return session


def _audit_kill(session: AgentSession) -> None:
    # The cancel underneath records session_cancelled too; the kill says that a person forced it.
    audit_record(action=AuditAction.SESSION_KILLED, target=f"session #{session.pk}", project=session.project_id,
                 details={"status": session.status, "task": session.task_id})


def _cancel(session: AgentSession) -> AgentSession:
    was_paused = session.status == SessionStatus.PAUSED
    session = session_request_cancel(session=session)
    if was_paused:  # nobody needs to resume it any more
        pauses_close(session=session, by="cancelled", notes="the session was cancelled while paused")
    return session


def reap() -> dict[str, list[int]]:
    """The reaper: sessions whose heartbeat lease expired are re-queued from their checkpoint (or, past the attempt
    limit, failed with their task paused); stalled runs are scheduled again."""
    report: dict[str, list[int]] = {"requeued": [], "given_up": [], "redelivered": _redeliver_stalled(),
                                    "finishing": stranded_resume()}
    holds_release()  # a hold whose release schedule was lost ends here at the latest
    stale = AgentSession.objects.filter(status=SessionStatus.RUNNING, heartbeat_at__lt=lease_cutoff())
    for session_id in stale.values_list("pk", flat=True)[:200]:
        outcome = _reap_one(session_id)
        if outcome:
            report[outcome].append(session_id)
    for project_id in Project.objects.filter(status=Project.Status.RUNNING).values_list("pk", flat=True):
        project = Project.objects.get(pk=project_id)
        if project.strategy == Project.Strategy.BATCH:
            batch_merge_if_barrier(project=project)
        schedule(project_id=project_id)
    return report


def stranded_resume(*, project: Project | None = None) -> list[int]:
    """Tasks that nobody is finishing get a job that does: verified work waiting to merge, a merge cut off at any
    step, a session that ended while its task was never settled, a merged worktree never cleaned up. "Nobody" means
    the worktree's merge lease expired; the lease is taken for the queued job, so each is queued once per lease."""
    cutoff = lease_cutoff()
    expired = Q(merge_heartbeat_at__isnull=True) | Q(merge_heartbeat_at__lt=cutoff)
    rows = Worktree.objects.filter(expired).filter(
        Q(status__in=(Worktree.Status.ACTIVE, Worktree.Status.CONFLICT), task__status__in=ACTIVE_TASKS)
        | Q(status=Worktree.Status.MERGED, merge_step=Worktree.Step.MERGED, task__isnull=False))
    if project is not None:
        rows = rows.filter(project=project)
    queued = []
    for worktree_id, task_id in rows.values_list("pk", "task_id")[:200]:
        if _stranded(Task.objects.select_related("project").get(pk=task_id), cutoff) and \
                Worktree.objects.filter(pk=worktree_id).filter(expired).update(
                    merge_owner=QUEUED, merge_heartbeat_at=timezone.now()):
            enqueue("apps.orchestration.jobs.finish_task", task_id)
            queued.append(task_id)
    return queued


def _stranded(task: Task, cutoff) -> bool:
    if task.status == TaskStatus.MERGING or task.status == TaskStatus.DONE:
        return task.project.strategy != Project.Strategy.BATCH  # batch: the barrier merges (below)
    if task.status != TaskStatus.RUNNING:
        return False
    session = task.sessions.order_by("-pk").first()
    return session is not None and session.is_finished and (session.ended_at is None or session.ended_at < cutoff)


def _redeliver_stalled() -> list[int]:
    """Queued coding and planning sessions whose job has not started for QUEUED_STALL_SECONDS get their job again.

    A job can vanish without a trace: the broker's pusher locks it, then dies (its database connection went
    away) before a worker got it, and the ORM broker hides a locked job for the whole retry period (an hour).
    A second delivery is harmless: the session is claimed once, the later job finds it taken or finished."""
    cutoff = timezone.now() - timedelta(seconds=settings.QUEUED_STALL_SECONDS)
    queued = AgentSession.objects.filter(status=SessionStatus.QUEUED, updated__lt=cutoff, checkpoint__isnull=True)
    stalled = queued.filter(Q(kind=SessionKind.CODING, task__status=TaskStatus.RUNNING) | Q(kind=SessionKind.PLANNING))
    ids = []
    for session_id, kind in stalled.values_list("pk", "kind")[:200]:
        if AgentSession.objects.filter(pk=session_id, status=SessionStatus.QUEUED).update(updated=timezone.now()):
            job = "run_planning" if kind == SessionKind.PLANNING else "run_task"
            enqueue(f"apps.orchestration.jobs.{job}", session_id)
            ids.append(session_id)
    return ids


def _reap_one(session_id: int) -> str | None:
    with transaction.atomic():
        rows = AgentSession.objects.select_for_update(**_skip_locked()).filter(
            pk=session_id, status=SessionStatus.RUNNING, heartbeat_at__lt=lease_cutoff())
        session = rows.select_related("project").first()
        if session is None:
            return None  # renewed, finished or being reaped by someone else meanwhile
        events_append(session=session, events=[("lost", {"lease_owner": session.lease_owner,
                                                         "heartbeat_at": session.heartbeat_at.isoformat()})])
        task = Task.objects.filter(pk=session.task_id).first()
        if task is not None:
            Task.objects.filter(pk=task.pk).update(attempts=F("attempts") + 1)
            task.refresh_from_db()
        if (task.attempts if task else session.attempts) >= settings.TASK_MAX_ATTEMPTS:
            _give_up(session, task)
            return "given_up"
        session = session_transition(session=session, status=SessionStatus.QUEUED, lease_owner="")
        session_requeue(session=session, by="the reaper",
                        notes="The previous worker stopped answering; carry on from here.")
        return "requeued"


def _give_up(session: AgentSession, task: Task | None) -> None:
    reason = f"its worker was lost {task.attempts if task else session.attempts} times"
    session_transition(session=session, status=SessionStatus.FAILED, stop_reason="lost", error=reason)
    if task is not None and task.status in ACTIVE_TASKS:
        task_transition(task=task, to=TaskStatus.PAUSED, error=f"paused: {reason} (limit "
                                                               f"{settings.TASK_MAX_ATTEMPTS})")


def _skip_locked() -> dict:
    return {"skip_locked": True} if connection.features.has_select_for_update_skip_locked else {}



# ------------------------------------------------------------------------------------------------ worktree actions


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
