"""A run's life: start it (settings, worktrees reconciled, batches planned, first claims), cancel it, kill one
session. The reaper's django-q2 schedule is ensured here too."""

from __future__ import annotations

from collections import Counter

from django.conf import settings
from django.db import transaction
from django_q.brokers import get_broker
from django_q.models import Schedule

from apps.agents.models import AgentSession
from apps.agents.services import session_request_cancel, session_transition
from apps.core.audit import audit_record
from apps.core.errors import ConflictError
from apps.core.models import AuditAction
from apps.interventions.services import pauses_close
from apps.orchestration.repository import repo_ensure
from apps.orchestration.scheduler import OPEN_SESSIONS, batches_plan, schedule_locked
from apps.orchestration.worktrees import worktrees_reconcile
from apps.projects.models import Project, Task
from apps.projects.services import project_status_move, project_update, task_transition

TaskStatus = Task.Status
SessionStatus = AgentSession.Status


REAPER_NAME = "yokeflow-reaper"


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
        project_status_move(project=project, to=Project.Status.RUNNING)
        audit_record(action=AuditAction.RUN_STARTED, target=f"project {project.slug}", project=project,
                     details={"parallel": project.parallel_enabled, "max_concurrency": project.max_concurrency,
                              "strategy": project.strategy})
        batches_plan(project=project)
        reaper_ensure()
        schedule_locked(project)
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


def reaper_ensure() -> Schedule:
    """The django-q2 schedule that runs the reaper (created once; kept at the configured interval)."""
    schedule, _ = Schedule.objects.update_or_create(
        name=REAPER_NAME, defaults={"func": "apps.orchestration.jobs.reap", "schedule_type": Schedule.MINUTES,
                                    "minutes": settings.REAPER_INTERVAL_MINUTES, "repeats": -1})
    return schedule


def run_cancel(*, project: Project) -> dict[str, int]:
    """Stop the run: queued and paused sessions are cancelled, running ones stop within a turn (their commands
    are killed). Tasks not started stay as they are; `run_start` goes on from there."""
    counts = Counter()
    with transaction.atomic():
        Project.objects.select_for_update(no_key=True).filter(pk=project.pk).first()
        for session in project.sessions.filter(status__in=OPEN_SESSIONS):
            counts[_cancel(session).status] += 1
        project_status_move(project=project, to=Project.Status.PAUSED)
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
