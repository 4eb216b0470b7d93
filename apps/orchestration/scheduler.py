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

from django.db import connection
from django.utils import timezone

from apps.agents.models import AgentSession, SessionKind
from apps.agents.providers import provider_account, provider_name
from apps.agents.services import session_create
from apps.core.errors import ConflictError
from apps.core.retry import db_retry
from apps.interventions.holds import hold_active
from apps.interventions.selectors import budget_paused
from apps.learning.model_selector import recommend_model
from apps.orchestration.models import ParallelBatch
from apps.orchestration.runs import enqueue
from apps.orchestration.worktrees import branch_for, path_for
from apps.projects.events import event_emit
from apps.projects.models import Epic, EventKind, Project, Task
from apps.projects.selectors import project_graph
from apps.projects.services import epic_status_move, project_status_move, task_transition, tasks_refresh_ready

TaskStatus = Task.Status
SessionStatus = AgentSession.Status
ACTIVE_TASKS = (TaskStatus.RUNNING, TaskStatus.MERGING)
OPEN_SESSIONS = (SessionStatus.QUEUED, SessionStatus.RUNNING, SessionStatus.PAUSED)


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


@db_retry.atomic
def schedule(*, project_id: int) -> list[AgentSession]:
    """Fill the project's free slots with ready tasks; finish the run when nothing is left to do.

    One scheduler at a time per project (its row is locked FOR NO KEY UPDATE: the first lock of the one order every
    writer takes — project, epic, task, worktree — which the foreign-key checks of new rows never wait for)."""
    project = Project.objects.select_for_update(no_key=True).filter(pk=project_id).first()
    if project is None or project.status != Project.Status.RUNNING:
        return []
    return schedule_locked(project)


def schedule_locked(project: Project) -> list[AgentSession]:
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
    for task in ready.filter(pk__in=batch.task_ids).select_related("epic").order_by("priority", "position"):
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
        if task.epic.status == Epic.Status.PENDING:
            epic_status_move(epic=task.epic, to=Epic.Status.IN_PROGRESS)
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
        project_status_move(project=project, to=Project.Status.COMPLETED)
    elif open_tasks.filter(status=TaskStatus.FAILED).exists():
        project_status_move(project=project, to=Project.Status.FAILED)
    else:
        project_status_move(project=project, to=Project.Status.PAUSED)


def project_kick(*, project: Project) -> None:
    """After a person unblocked something (resolved a conflict, continued a session): run on if the run stopped."""
    project.refresh_from_db()
    if project.status in (Project.Status.PAUSED, Project.Status.FAILED):
        project_status_move(project=project, to=Project.Status.RUNNING)  # the scheduler finishes it if nothing is left
    schedule(project_id=project.pk)
