"""Queueing background jobs: on django-q2 after the current transaction commits, or collected and run in this
process (the CLI's `--sync` mode and the tests) by `jobs_drain`."""

from __future__ import annotations

import functools
import itertools
import logging
import os
from collections.abc import Callable
from contextvars import ContextVar

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils.module_loading import import_string
from django_q.tasks import async_task

from apps.core.context import WorkContext, current, new_correlation_id, started
from apps.core.db import is_connection_error, reconnect

log = logging.getLogger("yokeflow.jobs")

# In "inline" mode jobs are collected here and run by `jobs_drain` in this process.
_inline_jobs: ContextVar[list[tuple[str, tuple]] | None] = ContextVar("inline_jobs", default=None)


def enqueue(func: str, *args: object) -> None:
    """Queue a job once the current transaction commits (a worker must never see rows that may roll back).

    `func` is resolved here, so a wrong path fails in the caller (and its tests), not later on a worker; the queue
    shows it as the task's name (every task's function is `run_job`, which carries the caller's context)."""
    job_resolve(func)
    inline = _inline_jobs.get()
    if inline is not None:  # runs after the caller returned, so after its transaction; dropped if it raised
        inline.append((func, args))
        return
    context = current().as_dict()  # the job carries who asked and the correlation id into the worker
    transaction.on_commit(lambda: async_task("apps.core.jobs.run_job", func, context, *args,
                                             group=func.rsplit(".", 1)[-1], task_name=_task_name(func)))


@functools.cache
def job_resolve(func: str) -> Callable[..., object]:
    """The job function at dotted path `func`; raises ImportError naming the path when there is none."""
    try:
        target = import_string(func)
    except ImportError as exc:
        raise ImportError(f"job {func!r} does not resolve: {exc}") from None
    if not callable(target):
        raise ImportError(f"job {func!r} is not callable")
    return target


_names = itertools.count(1)


def _task_name(func: str) -> str:
    """The queue's name for one task: the job's path and a sequence number (django-q2 wants names to differ)."""
    return f"{func} #{os.getpid()}-{next(_names)}"


def run_job(func: str, context: dict, *args: object) -> object:
    """A queued job on the worker: in its caller's context (correlation id, actor), origin "job <name>".

    Every job survives one lost database connection: it waits for the database (DB_WAIT_SECONDS) and runs once
    more from the start (jobs are written to be repeatable: they re-read what is done)."""
    work = WorkContext(correlation_id=context.get("correlation_id") or new_correlation_id(),
                       actor=context.get("actor", ""), origin=f"job {func.rsplit('.', 1)[-1]}",
                       project_id=context.get("project_id"))
    with started(work):
        try:  # (django-q2 closes obsolete connections before each job; CONN_HEALTH_CHECKS checks kept ones)
            return job_resolve(func)(*args)
        except DatabaseError as exc:
            if not is_connection_error(exc):
                raise
            log.warning("job %s lost its database connection (%s); waiting for it, then running it again", func,
                        str(exc).strip().splitlines()[0][:200])
            reconnect(settings.DB_WAIT_SECONDS)
            return job_resolve(func)(*args)


def jobs_drain(start: Callable[[], object], after_each: Callable[[str], None] | None = None) -> None:
    """Run `start` and every job it queues, one after another in this process (no worker needed)."""
    queue: list[tuple[str, tuple]] = []
    token = _inline_jobs.set(queue)
    try:
        start()  # if it raises, the queued jobs are dropped with its rolled-back transaction
        while queue:
            func, args = queue.pop(0)
            job_resolve(func)(*args)
            if after_each:
                after_each(func)
    finally:
        _inline_jobs.reset(token)


def heartbeat() -> None:
    """Runs every minute on the cluster (the `yokeflow-heartbeat` schedule); its scheduling is the signal /health
    reads, so there is nothing to do here."""
