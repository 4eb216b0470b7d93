"""Runs: plan a project with a planning session, then build it task by task (sequentially, in dependency order).

A task is done only when its acceptance tests, re-run here (not the agent's word), passed and its work is
committed to the default branch with a message naming the task. Each step is one django-q2 job that claims the
next ready task, runs its coding session, settles it and enqueues the next step after commit.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.tasks import async_task

from apps.agents.coding import coding_session_run
from apps.agents.loop import LoopConfig, Outcome
from apps.agents.models import AgentSession, SessionKind
from apps.agents.planning import PlanningResult, planning_session_run
from apps.agents.prompts import render
from apps.agents.providers import model_for_tier, provider_name
from apps.agents.sandbox import run_command, scrubbed_env
from apps.agents.services import session_create, session_transition
from apps.core.errors import ConflictError, SandboxError, ValidationError, YokeFlowError
from apps.orchestration.repository import repo_commit_all, repo_ensure, repo_set_aside
from apps.projects.models import Project, Task, TestResult
from apps.projects.services import task_transition, tasks_refresh_ready

TaskStatus = Task.Status
ACTIVE_TASKS = (TaskStatus.RUNNING, TaskStatus.MERGING)
MAX_EVIDENCE_CHARS = 20_000


# In "inline" mode (the CLI's --sync) jobs are collected here and run by `jobs_drain` in this process.
_inline_jobs: ContextVar[list[tuple[str, tuple]] | None] = ContextVar("inline_jobs", default=None)


def enqueue(func: str, *args: object) -> None:
    """Queue a job once the current transaction commits (a worker must never see rows that may roll back)."""
    inline = _inline_jobs.get()
    if inline is not None:  # runs after the caller returned, so after its transaction; dropped if it raised
        inline.append((func, args))
        return
    transaction.on_commit(lambda: async_task(func, *args, group=func.rsplit(".", 1)[-1]))


def jobs_drain(start: Callable[[], object], after_each: Callable[[str], None] | None = None) -> None:
    """Run `start` and every job it queues, one after another in this process (no worker needed)."""
    queue: list[tuple[str, tuple]] = []
    token = _inline_jobs.set(queue)
    try:
        start()  # if it raises, the queued jobs are dropped with its rolled-back transaction
        while queue:
            func, args = queue.pop(0)
            import_string(func)(*args)
            if after_each:
                after_each(func)
    finally:
        _inline_jobs.reset(token)


def _set_status(project: Project, status: str) -> None:
    Project.objects.filter(pk=project.pk).update(status=status, updated=timezone.now())
    project.status = status


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
                                 provider=provider_name(), workdir=project.repo_path)
        enqueue("apps.orchestration.jobs.run_planning", session.pk)
    return session


def planning_execute(*, session: AgentSession, resume_message: str | None = None, force: bool = False
                     ) -> PlanningResult:
    result = planning_session_run(session=session, resume_message=resume_message, force=force)
    if result.imported:
        _set_status(session.project, Project.Status.PLANNED)
    return result


# ------------------------------------------------------------------------------------------------ runs


def run_start(*, project: Project) -> Project:
    """Start (or restart after a pause) the sequential run: the first step is queued after commit."""
    if not project.tasks.exists():
        raise ConflictError(f"project {project.slug!r} has no plan yet; plan it or import a plan first",
                            code="no_plan")
    if project.status == Project.Status.RUNNING:
        raise ConflictError(f"project {project.slug!r} is already running", code="already_running")
    if not project.tasks.exclude(status__in=(TaskStatus.DONE, TaskStatus.CANCELLED)).exists():
        raise ConflictError(f"every task of {project.slug!r} is already done", code="nothing_to_run")
    paused = project.sessions.filter(status=AgentSession.Status.PAUSED).select_related("task").first()
    if paused:
        raise ConflictError(f"session #{paused.pk} ({paused.task.key if paused.task else 'planning'}) is paused: "
                            "continue or cancel it first", code="session_paused")
    repo_ensure(project)
    with transaction.atomic():
        _set_status(project, Project.Status.RUNNING)
        tasks_refresh_ready(project=project)
        enqueue("apps.orchestration.jobs.run_step", project.pk)
    return project


def task_retry(*, task: Task) -> Task:
    """Put a failed or cancelled task back in the queue (its stashed work stays in `git stash list`)."""
    if task.status not in (TaskStatus.FAILED, TaskStatus.CANCELLED):
        raise ConflictError(f"task {task.key} is {task.status}; only failed or cancelled tasks are retried",
                            code="not_retryable")
    task = task_transition(task=task, to=TaskStatus.READY if task.status == TaskStatus.FAILED
                           else TaskStatus.PENDING, error="")
    tasks_refresh_ready(project=task.project)
    if task.project.status == Project.Status.FAILED:
        _set_status(task.project, Project.Status.PAUSED)
    return task


def _remaining_budget(project: Project) -> Decimal | None:
    if project.budget_usd is None:
        return None
    spent = project.sessions.aggregate(total=Sum("cost_usd"))["total"] or Decimal(0)
    return max(Decimal(0), project.budget_usd - spent)


def _run_finished(project: Project) -> None:
    """No task is ready: the run completed, or it cannot go on (a task failed, paused or is blocked)."""
    open_tasks = project.tasks.exclude(status__in=(TaskStatus.DONE, TaskStatus.CANCELLED))
    if not open_tasks.exists():
        _set_status(project, Project.Status.COMPLETED)
    elif open_tasks.filter(status=TaskStatus.FAILED).exists():
        _set_status(project, Project.Status.FAILED)
    else:
        _set_status(project, Project.Status.PAUSED)


def _claim_next(project: Project) -> Task | None:
    """The next ready task in plan order, claimed with a conditional update (another step may race us)."""
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=project.pk).first()  # serialise concurrent steps
        if project.tasks.filter(status__in=(*ACTIVE_TASKS, TaskStatus.PAUSED)).exists():
            return None  # sequential: one task at a time, and a paused one keeps the working copy
        tasks_refresh_ready(project=project)
        for task in project.tasks.filter(status=TaskStatus.READY).order_by("position")[:5]:
            try:
                return task_transition(task=task, to=TaskStatus.RUNNING)
            except ConflictError:
                continue
    return None


@dataclass
class StepResult:
    task: Task | None = None
    session: AgentSession | None = None
    outcome: Outcome | None = None
    done: bool = False


def run_step(*, project: Project) -> StepResult:
    """One step of the sequential run: claim the next ready task, build it, settle it, queue the next step."""
    project.refresh_from_db()
    if project.status != Project.Status.RUNNING:
        return StepResult()
    task = _claim_next(project)
    if task is None:
        if not project.tasks.filter(status__in=ACTIVE_TASKS).exists():
            _run_finished(project)
        return StepResult()
    session = session_create(project=project, kind=SessionKind.CODING, task=task, model=model_for_tier(),
                             provider=provider_name(), workdir=project.repo_path)
    return coding_execute(session=session)


def coding_execute(*, session: AgentSession, resume_message: str | None = None, force: bool = False) -> StepResult:
    """Run (or continue) a coding session, settle its task, and queue the run's next step."""
    project = session.project
    remaining = _remaining_budget(project)
    # The loop compares the session's own spend; what it spent before a pause is already out of `remaining`.
    config = LoopConfig(budget_usd=None if remaining is None else remaining + session.cost_usd)
    try:
        outcome = coding_session_run(session=session, branch=project.default_branch, config=config,
                                     resume_message=resume_message, force=force)
    except Exception:
        # The loop has already marked the session failed (if it got that far); the task must not stay running.
        _settle_after_crash(session)
        raise
    task = Task.objects.get(pk=session.task_id)
    done = task_settle(task=task, session=session, outcome=outcome)
    project.refresh_from_db()
    if project.status == Project.Status.RUNNING:
        enqueue("apps.orchestration.jobs.run_step", project.pk)
    return StepResult(task=task, session=session, outcome=outcome, done=done)


def _settle_after_crash(session: AgentSession) -> None:
    session.refresh_from_db()
    task = Task.objects.get(pk=session.task_id)
    if session.status != AgentSession.Status.RUNNING and task.status == TaskStatus.RUNNING:
        task_settle(task=task, session=session, outcome=Outcome(session.status, session.stop_reason, session.error))


# ------------------------------------------------------------------------------------------------ settling


def task_settle(*, task: Task, session: AgentSession, outcome: Outcome) -> bool:
    """Turn a session's outcome into the task's status. True when the task is done (verified and committed)."""
    if outcome.status == "running":  # another worker took the session over; it will settle the task
        return False
    if not outcome.completed:
        target = {"paused": TaskStatus.PAUSED, "cancelled": TaskStatus.CANCELLED}.get(outcome.status,
                                                                                       TaskStatus.FAILED)
        task_transition(task=task, to=target, error=f"{outcome.reason}: {outcome.message}")
        if target != TaskStatus.PAUSED:  # a paused task keeps its work in place to continue from it
            _set_aside(task, session)
        if target != TaskStatus.CANCELLED:
            _set_status(task.project, Project.Status.PAUSED if target == TaskStatus.PAUSED
                        else Project.Status.FAILED)
        return False
    task = task_transition(task=task, to=TaskStatus.MERGING)
    try:
        failures = acceptance_run(task=task, workdir=Path(session.workdir))
        if not failures:
            repo_commit_all(repo_ensure(task.project), _commit_message(task, session, outcome),
                            branch=task.project.default_branch)
    except YokeFlowError as exc:  # git trouble: the task fails with the reason instead of hanging in merging
        failures = [f"{exc.code}: {exc.message}"]
    if failures:
        _set_aside(task, session)
        task_transition(task=task, to=TaskStatus.FAILED, error="not done: " + "; ".join(failures))
        _set_status(task.project, Project.Status.FAILED)
        return False
    task_transition(task=task, to=TaskStatus.DONE)
    tasks_refresh_ready(project=task.project)
    return True


def _set_aside(task: Task, session: AgentSession) -> None:
    """The working copy is shared by the run's tasks: unfinished work is stashed, never committed as another's."""
    try:
        repo_set_aside(repo_ensure(task.project), f"yokeflow: unfinished work of {task.key} (session {session.pk})")
    except YokeFlowError as exc:
        task.last_error = f"{task.last_error}; could not set its work aside: {exc.message}".lstrip("; ")
        task.save(update_fields=["last_error", "updated"])


def acceptance_run(*, task: Task, workdir: Path) -> list[str]:
    """Run the task's acceptance commands in the working copy; store result and evidence; return failures."""
    failures = []
    home = workdir.parent / "home"
    home.mkdir(parents=True, exist_ok=True)
    for test in task.tests.order_by("position"):
        if not test.command.strip():
            test.result, test.evidence = test.Result.PENDING, "no command given: not verified automatically"
        else:
            test.result, test.evidence = _acceptance_one(test.command, workdir, home)
            if test.result != test.Result.PASSED:
                failures.append(f"acceptance test failed: {test.description} (`{test.command}`)")
        test.last_run_at = timezone.now()
        test.save(update_fields=["result", "evidence", "last_run_at", "updated"])
    return failures


def _acceptance_one(command: str, workdir: Path, home: Path) -> tuple[str, str]:
    try:
        result = run_command(command, cwd=workdir, timeout=float(settings.COMMAND_TIMEOUT),
                             env=scrubbed_env(home=str(home)))
    except SandboxError as exc:  # e.g. the plan's command is refused by the sandbox policy
        return TestResult.ERROR, f"not run: {exc.message}"
    return (TestResult.PASSED if result.ok else TestResult.FAILED), result.as_text()[-MAX_EVIDENCE_CHARS:]


def _commit_message(task: Task, session: AgentSession, outcome: Outcome) -> str:
    evidence = str(outcome.state.get("reported", {}).get("evidence", "")).strip()
    body = f"\n\n{evidence[:2000]}" if evidence else ""
    return (f"{task.key}: {task.title}{body}\n\nYokeFlow-Task: {task.key}\nYokeFlow-Session: {session.pk}\n"
            f"YokeFlow-Model: {session.model_label}\n")


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
    busy = project_busy_with_other(session)
    if busy:
        raise ConflictError(f"task {busy} is running in this project's working copy; wait for it or cancel it",
                            code="project_busy")
    checkpoint_turn = getattr(getattr(session, "checkpoint", None), "turn", 0)
    message = render("resume.md", turn=checkpoint_turn, by=by, notes=notes)
    with transaction.atomic():
        if session.status == AgentSession.Status.PAUSED:
            session = session_transition(session=session, status=AgentSession.Status.QUEUED, cancel_requested=False)
            _resume_task(session)
        job = "run_planning" if session.kind == SessionKind.PLANNING else "continue_coding"
        enqueue(f"apps.orchestration.jobs.{job}", session.pk, message, force)
    return session


def project_busy_with_other(session: AgentSession) -> str | None:
    others = Task.objects.filter(project_id=session.project_id, status__in=ACTIVE_TASKS)
    if session.task_id:
        others = others.exclude(pk=session.task_id)
    return others.values_list("key", flat=True).first()


def _resume_task(session: AgentSession) -> None:
    if session.task_id is None:
        return
    task = Task.objects.get(pk=session.task_id)
    if task.status == TaskStatus.PAUSED:
        task_transition(task=task, to=TaskStatus.RUNNING)
    _set_status(session.project, Project.Status.RUNNING)
