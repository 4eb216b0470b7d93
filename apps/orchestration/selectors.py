"""Reads for runs: worktrees, batches with their progress, and the parallel status of a project."""

from __future__ import annotations

from collections import Counter

from django.db.models import QuerySet
from django_q.brokers import get_broker

from apps.agents.models import AgentSession
from apps.core.errors import NotFoundError
from apps.orchestration.models import LIVE_WORKTREE, ParallelBatch, Worktree
from apps.orchestration.worktrees import worktree_git_status
from apps.projects.models import Project, Task


def worktrees_list(*, project: Project, live_only: bool = False) -> QuerySet[Worktree]:
    rows = Worktree.objects.filter(project=project).select_related("epic", "task", "project")
    return rows.filter(status__in=LIVE_WORKTREE) if live_only else rows


def worktree_detail(worktree: Worktree) -> Worktree:
    """The worktree with its live git status attached as `git` (None once merged or removed)."""
    worktree.git = worktree_git_status(worktree)
    return worktree


def batches_list(*, project: Project) -> list[dict]:
    batches = list(ParallelBatch.objects.filter(project=project).order_by("number"))
    tasks = {pk: (key, status) for pk, key, status in
             Task.objects.filter(project=project).values_list("pk", "key", "status")}
    return [_batch_view(batch, tasks) for batch in batches]


def batch_get(*, project: Project, number: int) -> dict:
    batch = ParallelBatch.objects.filter(project=project, number=number).first()
    if batch is None:
        raise NotFoundError(f"project {project.slug!r} has no batch {number} (start a run to plan batches)",
                            code="batch_not_found")
    tasks = {pk: (key, status) for pk, key, status in
             Task.objects.filter(pk__in=batch.task_ids).values_list("pk", "key", "status")}
    return _batch_view(batch, tasks)


def _batch_view(batch: ParallelBatch, tasks: dict[int, tuple[str, str]]) -> dict:
    states = Counter(tasks[pk][1] for pk in batch.task_ids if pk in tasks)
    return {"number": batch.number, "status": batch.status, "task_ids": batch.task_ids,
            "task_keys": [tasks[pk][0] for pk in batch.task_ids if pk in tasks], "total": len(batch.task_ids),
            "done": states[Task.Status.DONE], "running": states[Task.Status.RUNNING],
            "started_at": batch.started_at, "completed_at": batch.completed_at}


def parallel_status(*, project: Project) -> dict:
    counts = Counter(project.tasks.values_list("status", flat=True))
    running = (AgentSession.objects.filter(project=project, status=AgentSession.Status.RUNNING)
               .select_related("task").order_by("started_at"))
    batches = list(project.batches.values_list("number", "status"))
    open_numbers = [n for n, status in batches if status != ParallelBatch.Status.COMPLETED]
    return {
        "project_id": project.pk, "status": project.status, "parallel_enabled": project.parallel_enabled,
        "strategy": project.strategy, "max_concurrency": project.max_concurrency, "tasks": dict(counts),
        "running": [{"session_id": s.pk, "task_key": s.task.key if s.task_id else s.kind, "model": s.model_label,
                     "turns": s.turns, "started_at": s.started_at, "heartbeat_at": s.heartbeat_at}
                    for s in running],
        "current_batch": open_numbers[0] if open_numbers else None, "batches_total": len(batches),
        "batches_completed": len(batches) - len(open_numbers),
        "live_worktrees": Worktree.objects.filter(project=project, status__in=LIVE_WORKTREE).count(),
        "queued_jobs": get_broker().queue_size(),
    }


def run_figures(*, project: Project) -> dict[str, float]:
    """Wall-clock of the build (first coding session started → last task done) and the agents' summed time."""
    sessions = AgentSession.objects.filter(project=project, kind=AgentSession.Kind.CODING, started_at__isnull=False)
    starts = list(sessions.values_list("started_at", "ended_at"))
    last_done = project.tasks.filter(completed_at__isnull=False).order_by("-completed_at").values_list(
        "completed_at", flat=True).first()
    if not starts or last_done is None:
        return {"wall_s": 0.0, "work_s": 0.0, "overlap": 0.0}
    wall = (last_done - min(start for start, _end in starts)).total_seconds()
    work = sum((end - start).total_seconds() for start, end in starts if end)
    return {"wall_s": wall, "work_s": work, "overlap": work / wall if wall else 0.0}
