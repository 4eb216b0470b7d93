"""Reads for runs: worktrees, batches with their progress, the parallel status, and the live board (swimlanes and
progress panel) of a project."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Max, QuerySet
from django.utils import timezone
from django_q.brokers import get_broker

from apps.agents.models import AgentSession
from apps.agents.selectors import project_spent
from apps.core.errors import NotFoundError
from apps.orchestration.models import LIVE_WORKTREE, ParallelBatch, Worktree
from apps.orchestration.worktrees import worktree_git_status
from apps.projects.events import event_last_seq
from apps.projects.graph import DependencyGraph, Edge, Node
from apps.projects.models import Epic, Project, Task, TaskDependency


def worktrees_list(*, project: Project, live_only: bool = False) -> QuerySet[Worktree]:
    rows = Worktree.objects.filter(project=project).select_related("epic", "task", "project")
    return rows.filter(status__in=LIVE_WORKTREE) if live_only else rows


def worktree_get(*, project: Project, worktree_id: int) -> Worktree | None:
    """The project's worktree with this id (None for another project's or an unknown one)."""
    return worktrees_list(project=project).filter(pk=worktree_id).first()


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


@dataclass(frozen=True)
class RunFigures:
    wall_s: float  # first coding session started → last task done
    work_s: float  # the agents' summed time
    overlap: float  # agents busy on average (work / wall)


def run_figures(*, project: Project) -> RunFigures:
    """Wall-clock of the build (first coding session started → last task done) and the agents' summed time."""
    sessions = AgentSession.objects.filter(project=project, kind=AgentSession.Kind.CODING, started_at__isnull=False)
    starts = list(sessions.values_list("started_at", "ended_at"))
    last_done = project.tasks.filter(completed_at__isnull=False).order_by("-completed_at").values_list(
        "completed_at", flat=True).first()
    if not starts or last_done is None:
        return RunFigures(wall_s=0.0, work_s=0.0, overlap=0.0)
    wall = (last_done - min(start for start, _end in starts)).total_seconds()
    work = sum((end - start).total_seconds() for start, end in starts if end)
    return RunFigures(wall_s=wall, work_s=work, overlap=work / wall if wall else 0.0)


# ------------------------------------------------------------------------------------------------ live board


@dataclass
class Card:
    pk: int
    key: str
    title: str
    status: str
    epic_id: int
    batch: int
    domain: str
    estimate: int
    attempts: int
    error: str
    deps: list[str] = field(default_factory=list)
    session_id: int | None = None


@dataclass
class Lane:
    key: str
    title: str
    status: str
    cards: list[Card]
    done: int = 0


@dataclass
class Board:
    lanes: list[Lane]
    cards: list[Card]
    last_seq: int  # the newest event the board reflects (the page's live updates continue from it)


def project_board(*, project: Project) -> Board:
    """The swimlanes: a lane per epic, a card per task with its batch, dependencies and latest session.

    Five flat queries whatever the plan's size (epics, tasks, dependencies, latest sessions, last event).
    """
    lanes = {pk: Lane(key, title, status, []) for pk, key, title, status in
             Epic.objects.filter(project=project).order_by("position").values_list("pk", "key", "title", "status")}
    cards = _batched_cards(project)
    by_pk = {card.pk: card for card in cards}
    latest = (AgentSession.objects.filter(project=project, task__isnull=False).values("task_id")
              .annotate(last=Max("pk")).values_list("task_id", "last"))
    for task_id, session_id in latest:
        if task_id in by_pk:
            by_pk[task_id].session_id = session_id
    for card in cards:
        lane = lanes[card.epic_id]
        lane.cards.append(card)
        lane.done += card.status == Task.Status.DONE
    return Board(lanes=list(lanes.values()), cards=cards, last_seq=event_last_seq(project))


def _cards(project: Project) -> list[Card]:
    rows = Task.objects.filter(project=project).order_by("position").values_list(
        "pk", "key", "title", "status", "epic_id", "domain", "estimate_minutes", "attempts", "last_error")
    return [Card(pk, key, title, status, epic_id, 0, domain, estimate, attempts, (error or "")[:200])
            for pk, key, title, status, epic_id, domain, estimate, attempts, error in rows]


def _number_batches(cards: list[Card]) -> None:
    """Each card's Kahn batch (1-based), from the rows already read: the same batches the graph page lists."""
    graph = DependencyGraph([Node(c.key, 0, float(c.estimate)) for c in cards],
                            [Edge(c.key, dep) for c in cards for dep in c.deps])
    number = {key: n for n, keys in enumerate(graph.batches(), start=1) for key in keys}
    for card in cards:
        card.batch = number.get(card.key, 0)  # 0: in a cycle, never schedulable until the plan is fixed


@dataclass(frozen=True)
class RunProgress:
    total: int
    done: int
    counts: dict[str, int]  # tasks by status
    percent: int
    batches: list[dict]  # per batch: number, total, done, running, failed, percent
    agents: list[dict]  # the running and queued sessions
    spent: Decimal
    budget: Decimal | None
    budget_percent: int | None
    eta: dict


def run_progress(*, project: Project, cards: list[Card] | None = None) -> RunProgress:
    """The progress panel: overall and per-batch progress, running agents, cost against budget, ETA."""
    cards = cards if cards is not None else _batched_cards(project)
    counts = Counter(card.status for card in cards)
    finished = counts[Task.Status.DONE] + counts[Task.Status.CANCELLED]
    spent = project_spent(project=project)
    budget = project.budget_usd
    return RunProgress(
        total=len(cards), done=counts[Task.Status.DONE], counts=dict(counts),
        percent=round(100 * counts[Task.Status.DONE] / len(cards)) if cards else 0,
        batches=_batch_progress(cards),
        agents=_running_agents(project),
        spent=spent, budget=budget,
        budget_percent=round(100 * spent / budget) if budget else None,
        eta=run_eta(project=project, remaining=len(cards) - finished),
    )


def _batched_cards(project: Project) -> list[Card]:
    """Every task as a card with its dependencies' keys and its batch number (two queries)."""
    cards = _cards(project)
    keys = {card.pk: card.key for card in cards}
    deps: dict[int, list[str]] = {}
    for task_id, depends_on_id in TaskDependency.objects.filter(task__project=project).values_list(
            "task_id", "depends_on_id"):
        if depends_on_id in keys:
            deps.setdefault(task_id, []).append(keys[depends_on_id])
    for card in cards:
        card.deps = deps.get(card.pk, [])
    _number_batches(cards)
    return cards


def _batch_progress(cards: list[Card]) -> list[dict]:
    batches: dict[int, Counter] = {}
    for card in cards:
        batches.setdefault(card.batch, Counter())[card.status] += 1
    rows = []
    for number in sorted(batches):
        states = batches[number]
        total = sum(states.values())
        rows.append({"number": number, "total": total, "done": states[Task.Status.DONE],
                     "running": states[Task.Status.RUNNING] + states[Task.Status.MERGING],
                     "failed": states[Task.Status.FAILED], "percent": round(100 * states[Task.Status.DONE] / total)})
    return rows


def _running_agents(project: Project) -> list[dict]:
    now = timezone.now()
    rows = (AgentSession.objects.filter(project=project, status__in=(AgentSession.Status.RUNNING,
                                                                      AgentSession.Status.QUEUED))
            .select_related("task").order_by("started_at", "pk"))
    return [{"session_id": s.pk, "task_key": s.task.key if s.task_id else s.kind,
             "task_title": s.task.title if s.task_id else "planning", "model": s.model_label, "tier": s.model_tier,
             "turns": s.turns, "status": s.status, "pause_requested": s.pause_requested,
             "elapsed": duration_text((now - s.started_at).total_seconds() if s.started_at else 0)} for s in rows]


def run_eta(*, project: Project, remaining: int) -> dict:
    """Time left from this project's own history: the median task duration so far × the tasks left, spread over
    the agents that can work at once. None until a task of this project has finished."""
    durations = sorted(
        (done - started).total_seconds() for started, done in
        Task.objects.filter(project=project, status=Task.Status.DONE, started_at__isnull=False,
                            completed_at__isnull=False).values_list("started_at", "completed_at"))
    slots = project.max_concurrency if project.parallel_enabled else 1
    if not durations or remaining <= 0:
        return {"seconds": None if remaining > 0 else 0, "median_task_s": None, "slots": slots,
                "sample": len(durations), "remaining": max(remaining, 0)}
    median = durations[len(durations) // 2]
    rounds = -(-remaining // slots)  # ceil: a partly filled round still takes a task's time
    return {"seconds": int(rounds * median), "text": duration_text(rounds * median), "median_task_s": int(median),
            "slots": slots, "sample": len(durations), "remaining": remaining}


def duration_text(seconds: float) -> str:
    """"45 s", "3 min 5 s", "2 h 10 min": how long, at the precision a person reads."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
