"""Runs around the scheduler: queueing jobs (or draining them in-process), planning a project with a planning
session, retrying a task, and continuing a paused or orphaned session from its checkpoint.

Building the plan's tasks (claims, worktrees, merges, the reaper) is `scheduler.py`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.agents.loop_types import Outcome
from apps.agents.models import AgentSession, SessionKind
from apps.agents.planning import PlanningResult, planning_session_run
from apps.agents.prompts import render
from apps.agents.providers import model_for_tier, provider_name
from apps.agents.services import session_create, session_request_cancel, session_transition
from apps.core.audit import audit_record
from apps.core.errors import ConflictError, ValidationError
from apps.core.jobs import enqueue, jobs_drain  # noqa: F401 - jobs_drain is part of this module's API
from apps.core.models import AuditAction
from apps.interventions.detectors import BudgetGuard
from apps.interventions.models import PausedSession, PauseType
from apps.interventions.services import pause_open, pause_resolve, pauses_close
from apps.orchestration.merge_lease import QUEUED, merge_lease_refuse, worktree_of_task
from apps.orchestration.models import Worktree
from apps.orchestration.repository import repo_ensure
from apps.projects.models import Project, Task
from apps.projects.services import project_status_move, task_transition, tasks_refresh_ready

TaskStatus = Task.Status


# ------------------------------------------------------------------------------------------------ planning


def planning_start(*, project: Project) -> AgentSession:
    if project.tasks.exclude(status__in=(TaskStatus.PENDING, TaskStatus.READY)).exists():
        raise ConflictError(f"project {project.slug!r} has tasks that started; its plan cannot be replaced",
                            code="plan_started")
    if project.sessions.filter(kind=SessionKind.PLANNING, status__in=("queued", "running")).exists():
        raise ConflictError(f"project {project.slug!r} is already being planned", code="planning_in_progress")
    if not project.spec.strip():
        raise ValidationError("spec: the project has no spec to plan from", code="invalid_fields",
                              details={"fields": {"spec": ["required for planning"]}})
    repo_ensure(project)
    with transaction.atomic():
        session = session_create(project=project, kind=SessionKind.PLANNING, model=model_for_tier(),
                                 provider=provider_name(), workdir=project.repo_path,
                                 model_tier=settings.DEFAULT_MODEL_TIER,
                                 model_reason="planning sessions use DEFAULT_MODEL_TIER")
        enqueue("apps.orchestration.jobs.run_planning", session.pk)
    return session


def planning_execute(*, session: AgentSession, resume_message: str | None = None, force: bool = False
                     ) -> PlanningResult:
    guards = [BudgetGuard(session.project_id)]  # the plan's calls count against the project's budget too
    result = planning_session_run(session=session, guards=guards, resume_message=resume_message, force=force)
    if result.imported:
        project_status_move(project=session.project, to=Project.Status.PLANNED)
    elif result.outcome.status == AgentSession.Status.PAUSED:
        session_pause_record(session=session, outcome=result.outcome)
    return result


# ------------------------------------------------------------------------------------------------ retries


def task_retry(*, task: Task, by: str = "") -> Task:
    """Try a task again from where it stands.

    failed, paused, cancelled: back in the queue with a fresh attempt count (its worktree stays). merging, or
    running after its session ended: the merge (or the settling) is resumed now by a job — refused while a live
    worker is on it. Refused with the reason for a task that is done, not started, or whose session is open."""
    task.refresh_from_db()
    if task.status in (TaskStatus.MERGING, TaskStatus.RUNNING):
        return _finish_again(task, by)
    if task.status not in (TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.PAUSED):
        raise ConflictError(f"task {task.key} is {task.status}; only failed, paused or cancelled tasks are retried "
                            "(and merging ones finished)", code="not_retryable")
    if task.sessions.filter(status__in=("queued", "running", "paused")).exists():
        raise ConflictError(f"task {task.key} has an open session; continue or cancel it instead",
                            code="session_open")
    Task.objects.filter(pk=task.pk).update(attempts=0)
    task = task_transition(task=task, to=TaskStatus.PENDING if task.status == TaskStatus.CANCELLED
                           else TaskStatus.READY, error="")
    tasks_refresh_ready(project=task.project)
    _audit_task(AuditAction.TASK_RETRIED, task, by, {"to": task.status})
    return task


def _finish_again(task: Task, by: str) -> Task:
    if task.sessions.filter(status__in=("queued", "running", "paused")).exists():
        raise ConflictError(f"task {task.key} has an open session; continue or cancel it instead",
                            code="session_open")
    worktree = worktree_of_task(task)
    if worktree is not None:
        merge_lease_refuse(worktree, f"task {task.key}")
        Worktree.objects.filter(pk=worktree.pk).update(merge_owner=QUEUED, merge_heartbeat_at=timezone.now())
    enqueue("apps.orchestration.jobs.finish_task", task.pk)
    _audit_task(AuditAction.TASK_RETRIED, task, by, {"to": "finishing", "from": task.status})
    return task


def task_cancel(*, task: Task, by: str = "") -> Task:
    """Cancel one task in whatever state it is: an open session is cancelled with it (a running one stops within
    a turn), verified work waiting to merge stays on its branch. Refused for a done task and while a live worker
    is merging it (a merge is not cut off half-way)."""
    task.refresh_from_db()
    if task.status == TaskStatus.DONE:
        raise ConflictError(f"task {task.key} is done (merged); a done task is not cancelled", code="task_done")
    if task.status == TaskStatus.CANCELLED:
        return task
    session = task.sessions.filter(status__in=("queued", "running", "paused")).order_by("-pk").first()
    if session is not None:
        session_request_cancel(session=session)  # a queued or paused one takes its task along at once
        _audit_task(AuditAction.TASK_CANCELLED, task, by, {"session": session.pk})
        task.refresh_from_db()
        return task
    worktree = worktree_of_task(task)
    if worktree is not None and task.status in (TaskStatus.MERGING, TaskStatus.RUNNING):
        merge_lease_refuse(worktree, f"task {task.key}")
        if worktree.status == Worktree.Status.MERGED:
            raise ConflictError(f"task {task.key}'s work is already on {task.project.default_branch}; retry it to "
                                "mark it done", code="already_merged")
    with transaction.atomic():
        task = task_transition(task=task, to=TaskStatus.CANCELLED, error=f"cancelled by {by or 'a person'}")
        if worktree is not None:
            Worktree.objects.filter(pk=worktree.pk).update(
                merge_task_ids=[pk for pk in worktree.merge_task_ids if pk != task.pk])
        for paused in task.sessions.filter(pauses__resolved=False).distinct():
            pauses_close(session=paused, by=by or "cancel", notes="the task was cancelled")
        _audit_task(AuditAction.TASK_CANCELLED, task, by, {})
    return task


def _audit_task(action: str, task: Task, by: str, details: dict) -> None:
    audit_record(action=action, target=f"task {task.key}", project=task.project_id, actor=by,
                 details={"status": task.status, **details})


# ------------------------------------------------------------------------------------------------ control


def session_continue(*, session: AgentSession, notes: str = "", by: str = "", force: bool = False) -> AgentSession:
    """Continue a session from its checkpoint on a worker: a paused one, or a running one whose worker died.

    A running session whose lease is still live is refused unless `force` (the operator knows the worker is
    gone); the job itself takes the lease, so two continues cannot both run it.
    """
    if session.is_finished:
        raise ConflictError(f"session {session.pk} is {session.status}; a finished session cannot continue",
                            code="session_finished", recoverable=False)
    if session.status == AgentSession.Status.RUNNING and not force and session.lease_live:
        raise ConflictError(f"session {session.pk} is running on {session.lease_owner} and its heartbeat is "
                            f"recent; wait {settings.SESSION_LEASE_SECONDS} s or use force", code="session_leased")
    pause = PausedSession.objects.filter(session=session, resolved=False).first()
    if pause is not None:  # resolving the pause records who and why, then continues the session (below, again)
        pause_resolve(pause=pause, by=by or "operator", notes=notes)
        session.refresh_from_db()
        return session
    with transaction.atomic():
        if session.status == AgentSession.Status.PAUSED:
            session = session_transition(session=session, status=AgentSession.Status.QUEUED, cancel_requested=False)
            _resume_task(session)
        session_requeue(session=session, by=by, notes=notes, force=force)
    return session


def session_requeue(*, session: AgentSession, by: str, notes: str, force: bool = False) -> None:
    """Queue the job that continues `session` from its checkpoint, with a resume message naming who and why."""
    checkpoint_turn = getattr(getattr(session, "checkpoint", None), "turn", 0)
    message = render("resume.md", turn=checkpoint_turn, by=by, notes=notes)
    job = "run_planning" if session.kind == SessionKind.PLANNING else "continue_task"
    enqueue(f"apps.orchestration.jobs.{job}", session.pk, message, force)


def session_pause_record(*, session: AgentSession, outcome: Outcome) -> None:
    """A session stopped itself as paused: record the pause (recovery and notifications follow after commit)."""
    details = dict(outcome.details)
    retry_stats = details.pop("retry_stats", {})
    pause_type = outcome.reason if outcome.reason in PauseType.values else PauseType.MANUAL
    pause_open(session=session, pause_type=pause_type, reason=outcome.message or outcome.reason,
               blocker_info=details, retry_stats=retry_stats, can_auto_resume=bool(details.get("can_auto_resume")),
               provider_account=str(details.get("account", "")))


def _resume_task(session: AgentSession) -> None:
    if session.task_id is None:
        return
    task = Task.objects.get(pk=session.task_id)
    if task.status == TaskStatus.PAUSED:
        task_transition(task=task, to=TaskStatus.RUNNING)
    project_status_move(project=session.project, to=Project.Status.RUNNING)
