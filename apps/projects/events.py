"""The project's event stream: written next to each change of a run, read by the live pages and the feed.

Writers call `event_emit` inside the transaction that makes the change (task, session, batch, cost, run status),
so an event exists exactly when its change committed. Readers page by `id` (the sequence number).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Max
from django.utils import timezone

from apps.core.redaction import redact_value
from apps.projects.models import EventKind, Project, ProjectEvent, Task

FEED_LIMIT = 500


def event_emit(*, project_id: int, kind: str, task: Task | None = None, session_id: int | None = None,
               **payload: object) -> ProjectEvent:
    if task is not None:
        payload = {"task": task.key, **payload}
    return ProjectEvent.objects.create(project_id=project_id, kind=kind, task=task, session_id=session_id,
                                       payload=_plain(payload))


def task_event(task: Task, previous: str) -> ProjectEvent:
    """A task moved: started, finished (done/failed/cancelled) or anything else, with where it came from."""
    if task.status == Task.Status.RUNNING:
        kind = EventKind.TASK_START
    elif task.status in (Task.Status.DONE, Task.Status.FAILED, Task.Status.CANCELLED):
        kind = EventKind.TASK_COMPLETE
    else:
        kind = EventKind.TASK_STATUS
    return event_emit(project_id=task.project_id, kind=kind, task=task, status=task.status, previous=previous)


def tasks_event(project_id: int, keys: Iterable[str], status: str, previous: str) -> ProjectEvent | None:
    """Many tasks moved at once (pending → ready after a merge): one event naming them all."""
    keys = sorted(keys)
    if not keys:
        return None
    return event_emit(project_id=project_id, kind=EventKind.TASK_STATUS, tasks=keys, status=status,
                      previous=previous)


def events_after(*, project: Project, after: int = 0, limit: int = FEED_LIMIT,
                 kinds: Iterable[str] | None = None) -> list[ProjectEvent]:
    """The project's events after sequence number `after`, oldest first, at most `limit`.

    On PostgreSQL the newest second is held back (EVENTS_SETTLE_SECONDS): ids are handed out when rows are
    inserted, not when they commit, so an event with a lower id can become visible after a higher one. A client
    that moved its cursor past it would never see it; waiting for the stragglers keeps the feed gapless.
    """
    rows = ProjectEvent.objects.filter(project=project, id__gt=after).select_related(None)
    if kinds:
        rows = rows.filter(kind__in=list(kinds))
    settle = settings.EVENTS_SETTLE_SECONDS
    if settle and connection.vendor == "postgresql":
        rows = rows.filter(created__lte=timezone.now() - timedelta(seconds=settle))
    return list(rows.order_by("id")[:limit])


def events_recent(*, project: Project, limit: int) -> list[ProjectEvent]:
    """The newest `limit` events, newest first (the dashboard's activity list)."""
    return list(ProjectEvent.objects.filter(project=project).order_by("-id")[:limit])


def event_last_seq(project: Project) -> int:
    """The newest event's sequence number (0 before any): what a live page compares to know if it is stale."""
    return ProjectEvent.objects.filter(project=project).aggregate(last=Max("id"))["last"] or 0


def event_as_dict(event: ProjectEvent) -> dict:
    return {"seq": event.pk, "kind": event.kind, "created": event.created.isoformat(),
            "session_id": event.session_id, "task": event.payload.get("task"),
            "payload": redact_value(event.payload)}


def _plain(value: object) -> object:
    """JSON-ready payload values (Decimals as strings of dollars, dates as ISO text)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


def project_live(project: Project) -> bool:
    """Will more events come soon: the run goes on, or an agent (planning too) is still queued or at work."""
    project.refresh_from_db(fields=["status"])
    return project.status == Project.Status.RUNNING or project.sessions.filter(
        status__in=("queued", "running")).exists()


def event_stream(*, project: Project, after: int, seconds: float, poll: float = 1.0) -> Iterator[str]:
    """Server-sent events: the feed's rows as `id:`/`event:`/`data:` frames, as they are written.

    Ends when the run is over and everything is sent (an `end` frame), or after `seconds` (the client reconnects
    with Last-Event-ID and loses nothing). Comment frames keep idle connections open through proxies.
    """
    yield "retry: 2000\n\n"
    deadline, beat = time.monotonic() + seconds, time.monotonic()
    while True:
        events = events_after(project=project, after=after, limit=200)
        for event in events:
            after = event.pk
            yield f"id: {event.pk}\nevent: {event.kind}\ndata: {json.dumps(event_as_dict(event))}\n\n"
        if events:
            continue
        if not project_live(project) and not events_after(project=project, after=after, limit=1):
            yield f"event: end\ndata: {json.dumps({'last_seq': after, 'status': project.status})}\n\n"
            return
        if time.monotonic() >= deadline:
            return
        if time.monotonic() - beat >= 15:
            beat = time.monotonic()
            yield ": keep-alive\n\n"
        time.sleep(poll)
