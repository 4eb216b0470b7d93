"""django-q2 entry points: plain functions taking ids, each calling one service.

A session job survives the database going away: the loop stops without recording anything, the job waits for
the database (DB_WAIT_SECONDS), then continues the session once from its last checkpoint (events written before
the loss are kept: each batch of events commits with its sequence counter)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.db import DatabaseError

from apps.agents.models import AgentSession
from apps.core.context import working
from apps.core.db import is_connection_error, reconnect
from apps.core.errors import ConflictError, InvalidTransitionError
from apps.orchestration import execution, reaper, runs, scheduler
from apps.projects.models import Task

log = logging.getLogger("yokeflow.jobs")


def run_task(session_id: int) -> None:
    """A claimed task's session: worktree, agent, verification, merge; then the next claims."""
    _resilient(session_id, lambda session, retry: execution.task_session_execute(session=session, force=retry))


def continue_task(session_id: int, resume_message: str | None = None, force: bool = False) -> None:
    _resilient(session_id, lambda session, retry: execution.task_session_execute(
        session=session, resume_message=None if retry else resume_message, force=force or retry))


def run_planning(session_id: int, resume_message: str | None = None, force: bool = False) -> None:
    try:
        _resilient(session_id, lambda session, retry: runs.planning_execute(
            session=session, resume_message=None if retry else resume_message, force=force or retry))
    except (ConflictError, InvalidTransitionError) as exc:  # a second delivery: another worker has (or had) it
        log.info("planning session %s not run here: %s", session_id, exc.message)


def finish_task(task_id: int) -> None:
    """Settle, merge, complete or clean up what a task's ended session left (queued by the reaper, `retry` and the
    merge endpoint); a no-op when a live worker is on it or nothing is left."""
    task = Task.objects.select_related("project").get(pk=task_id)
    with working(project_id=task.project_id, task_id=task.pk):
        execution.task_finish(task=task)
        scheduler.schedule(project_id=task.project_id)


def reap() -> dict:
    return reaper.reap()


def _resilient(session_id: int, run: Callable[[AgentSession, bool], None]) -> None:
    """Run the session's job; after a lost database connection, reconnect and go on once from the checkpoint
    (`force` takes back this worker's own lease)."""
    try:
        _in_context(session_id, run, retry=False)
    except DatabaseError as exc:
        if not is_connection_error(exc):
            raise
        log.warning("session %s lost its database connection (%s); waiting for it, then continuing", session_id,
                    str(exc).strip().splitlines()[0][:200])
        reconnect(settings.DB_WAIT_SECONDS)
        _in_context(session_id, run, retry=True)


def _in_context(session_id: int, run: Callable[[AgentSession, bool], None], *, retry: bool) -> None:
    session = AgentSession.objects.select_related("project", "task").get(pk=session_id)
    with working(project_id=session.project_id, session_id=session.pk, task_id=session.task_id):
        log.info("session %s (%s) %s", session.pk, session.kind, "continues after reconnecting" if retry else "starts")
        run(session, retry)
        session.refresh_from_db(fields=["status", "turns", "cost_usd"])
        log.info("session %s ends %s after %s turns ($%s)", session.pk, session.status, session.turns,
                 session.cost_usd)
