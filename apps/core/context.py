"""Who and where the current unit of work comes from: a request, a job or a command.

One `WorkContext` per request (set by `apps.core.middleware.RequestContextMiddleware`), per job (carried by
`apps.core.jobs.enqueue` and restored by the job runner) and per `yokeflow` command. Logs, audit events and
commit messages read it, so a correlation id follows a click through the job it queued into the agent's commit.
"""

from __future__ import annotations

import contextlib
import socket
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field, replace


def new_correlation_id() -> str:
    return uuid.uuid4().hex[:16]


@dataclass(frozen=True)
class WorkContext:
    correlation_id: str = field(default_factory=new_correlation_id)
    actor: str = ""  # username, "system" or empty when nobody is known
    origin: str = ""  # "web 203.0.113.7", "api 203.0.113.7", "cli host", "job run_task"
    project_id: int | None = None
    session_id: int | None = None
    task_id: int | None = None

    def as_dict(self) -> dict:
        return {"correlation_id": self.correlation_id, "actor": self.actor, "origin": self.origin,
                "project_id": self.project_id, "session_id": self.session_id, "task_id": self.task_id}


_current: ContextVar[WorkContext | None] = ContextVar("yokeflow_work_context", default=None)


def current() -> WorkContext:
    """The context of the work in progress (a fresh one, with its own correlation id, outside any)."""
    context = _current.get()
    if context is None:
        context = WorkContext(origin=f"process {socket.gethostname()}")
        _current.set(context)
    return context


@contextlib.contextmanager
def working(**changes: object) -> Iterator[WorkContext]:
    """Run a block in the current context with some fields changed (e.g. the session it works on)."""
    context = replace(current(), **changes)
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


@contextlib.contextmanager
def started(context: WorkContext) -> Iterator[WorkContext]:
    """Run a block in `context` (a request, a job, a command), whatever was current before."""
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def update(**changes: object) -> WorkContext:
    """Change fields of the current context for the rest of the unit of work (e.g. the actor once an API token
    is checked); whoever started the unit (middleware, job runner, command) restores the previous one."""
    context = replace(current(), **changes)
    _current.set(context)
    return context
