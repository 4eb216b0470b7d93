"""The reaper: resumes what dead workers left (expired leases, stranded merges, sessions a broker lost).
Run every `REAPER_SECONDS` by `yokeflow worker` and, as a backstop, by a django-q2 schedule."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.agents.models import AgentSession, SessionKind, lease_cutoff
from apps.agents.services import events_append, session_transition
from apps.interventions.holds import holds_release
from apps.orchestration.execution import attempts_exhausted, batch_merge_if_barrier
from apps.orchestration.merge_lease import QUEUED
from apps.orchestration.models import Worktree
from apps.orchestration.runs import enqueue, session_requeue
from apps.orchestration.scheduler import ACTIVE_TASKS, schedule
from apps.projects.models import Project, Task
from apps.projects.services import task_transition

TaskStatus = Task.Status
SessionStatus = AgentSession.Status


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
        task = task_transition(task=task, to=TaskStatus.PAUSED, error=f"paused: {reason} (limit "
                                                                      f"{settings.TASK_MAX_ATTEMPTS})")
        attempts_exhausted(task=task, reason=reason)


def _skip_locked() -> dict:
    return {"skip_locked": True} if connection.features.has_select_for_update_skip_locked else {}
