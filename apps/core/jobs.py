"""Queueing background jobs: on django-q2 after the current transaction commits, or collected and run in this
process (the CLI's `--sync` mode and the tests) by `jobs_drain`."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

from django.db import transaction
from django.utils.module_loading import import_string
from django_q.tasks import async_task

# In "inline" mode jobs are collected here and run by `jobs_drain` in this process.
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
