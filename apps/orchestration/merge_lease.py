"""The merge lease: which worker finishes a worktree now. Held on the worktree row (`merge_owner`,
`merge_heartbeat_at`), renewed by a thread while tests run, released at the end; a lease that expired is free, so
the reaper can resume a merge whose worker died."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django import db
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from apps.agents.models import AgentSession, lease_cutoff
from apps.agents.services import worker_identity
from apps.core.errors import ConflictError
from apps.core.retry import db_retry
from apps.orchestration.models import Worktree
from apps.projects.models import Task

MAX_EVIDENCE_CHARS = 20_000
TaskStatus = Task.Status

log = logging.getLogger("yokeflow.merging")

QUEUED = "queued"  # the merge lease's owner while the reaper's job waits for a worker


_held: dict[int, int] = {}  # worktree id -> how many nested holders in this process


def _lease_free() -> Q:
    return (Q(merge_owner__in=("", QUEUED, worker_identity())) | Q(merge_heartbeat_at__isnull=True)
            | Q(merge_heartbeat_at__lt=lease_cutoff()))


@contextmanager
def merge_lease(worktree: Worktree) -> Iterator[bool]:
    """Hold the worktree's merge lease while finishing it (yields False when a live worker holds it). Re-entrant in
    one process; renewed every third of SESSION_LEASE_SECONDS by a thread; released (not expired) at the end, so
    a stranded merge is only resumed after a full lease."""
    if _held.get(worktree.pk):
        _held[worktree.pk] += 1
        try:
            yield True
        finally:
            _held[worktree.pk] -= 1
        return
    owner = worker_identity()
    if not db_retry(lambda: Worktree.objects.filter(pk=worktree.pk).filter(_lease_free()).update(
            merge_owner=owner, merge_heartbeat_at=timezone.now())):
        yield False
        return
    _held[worktree.pk] = 1
    renewer = _LeaseRenewer(worktree.pk, owner)
    try:
        with renewer:
            yield True
    finally:
        _held.pop(worktree.pk, None)
        db_retry(lambda: Worktree.objects.filter(pk=worktree.pk, merge_owner=owner).update(
            merge_owner="", merge_heartbeat_at=timezone.now()))


class _LeaseRenewer:
    """Renews a merge lease while acceptance tests run (own thread, own database connection)."""

    def __init__(self, worktree_id: int, owner: str) -> None:
        self.worktree_id, self.owner = worktree_id, owner
        self.interval = max(1.0, settings.SESSION_LEASE_SECONDS / 3)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._renew, name=f"merge-lease-{worktree_id}", daemon=True)

    def __enter__(self) -> _LeaseRenewer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=self.interval)

    def _renew(self) -> None:
        try:
            while not self.stopped.wait(self.interval):
                try:
                    Worktree.objects.filter(pk=self.worktree_id, merge_owner=self.owner).update(
                        merge_heartbeat_at=timezone.now())
                except db.DatabaseError as exc:  # the next beat tries again
                    log.warning("merge lease of worktree %s: %s", self.worktree_id, exc)
        finally:
            db.connections.close_all()


def merge_lease_refuse(worktree: Worktree, what: str) -> None:
    """Refuse to act on a worktree a live worker is finishing right now (a job merely queued for it is no
    obstacle: it finds the work done, or does it)."""
    owner = Worktree.objects.filter(pk=worktree.pk, merge_heartbeat_at__gte=lease_cutoff()).exclude(
        merge_owner__in=("", QUEUED)).values_list("merge_owner", flat=True).first()
    if owner:
        raise ConflictError(f"{what} is being merged by {owner} right now; it finishes on its own, or is taken over "
                            f"{settings.SESSION_LEASE_SECONDS} s after that worker stops", code="merge_in_progress")


def worktree_of_task(task: Task, session: AgentSession | None = None) -> Worktree | None:
    """The worktree the task's last session worked in (its own, or its epic's in the batch strategy)."""
    session = session or task.sessions.order_by("-pk").first()
    rows = Worktree.objects.filter(project=task.project_id).select_related("project").order_by("-pk")
    if session is not None and session.workdir:
        found = rows.filter(path=session.workdir).first()
        if found is not None:
            return found
    return rows.filter(task=task).first()
