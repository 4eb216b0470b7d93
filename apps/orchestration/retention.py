"""Retention: `yokeflow prune --older-than 30d` removes history nobody reads any more, in small transactions.

Removed when older than the cutoff:

* `ProjectEvent` rows: the live pages and the event feed read recent events only.
* The transcript (`SessionEvent`) and the `Checkpoint` of sessions that *finished* (completed, failed, cancelled)
  before the cutoff. A queued, running or paused session continues from its checkpoint and transcript, so those
  stay whatever their age; so does the `AgentSession` row itself (sessions list, totals).
* django-q2's records of finished jobs (`Success`, `Failure`) that stopped before the cutoff; queued jobs and
  schedules are never touched.
* `Worktree` rows merged or removed before the cutoff. Merging removes the directory; one still on disk is removed
  too, but only where YokeFlow put it, only if git no longer lists it and only if no live worktree uses the path.
* `AuditEvent` rows, when the core app has that model.

Kept: `AgentCost` rows. They are the money history that budgets, forecasts and the costs page add up; a row per
model call is small, and every column feeds a total, so there is no detail that could go on its own.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

from django.apps import apps
from django.db import transaction
from django.db.models import QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_q.models import Failure, Success

from apps.agents.models import FINISHED_STATUSES, Checkpoint, SessionEvent
from apps.core.errors import ConflictError, GitError, ValidationError
from apps.core.validation import age_or_none
from apps.orchestration.models import LIVE_WORKTREE, Worktree
from apps.orchestration.worktrees import gitops, repo_lock
from apps.projects.models import ProjectEvent

BATCH_SIZE = 5000  # rows per delete transaction: short locks, bounded memory for the id list
LOCK_TIMEOUT = 30.0  # seconds to wait for a project's repository lock before leaving its directories for next time
KEPT_NOTE = "cost rows (AgentCost) are kept: budgets, forecasts and the costs page are computed from them"


def parse_age(text: str) -> timedelta:
    """`30d`, `12h` or `2w`; anything else is a ValidationError (one line for the command)."""
    age = age_or_none(text)
    if not age or text.strip().endswith("m"):  # minutes would be a typo for months: refused
        raise ValidationError(f"--older-than: {text!r} is not an age such as 30d, 12h or 2w",
                              code="invalid_fields", details={"fields": {"older_than": ["age"]}})
    return age


def prune(*, older_than: timedelta, dry_run: bool) -> dict[str, int]:
    """Delete (or with `dry_run` only count) what is older than `older_than`; rows per kind, in a stable order."""
    cutoff = timezone.now() - older_than
    counts: dict[str, int] = {}
    for kind, queryset in _prunable(cutoff):
        if kind == "worktrees":  # the directories first: the rows say where they are
            counts["worktree directories"] = _worktree_directories(queryset, dry_run=dry_run)
        counts[kind] = _delete(queryset, dry_run=dry_run)
    return counts


def _prunable(cutoff: datetime) -> Iterator[tuple[str, QuerySet]]:
    yield "project events", ProjectEvent.objects.filter(created__lt=cutoff)
    finished = {"session__status__in": FINISHED_STATUSES, "session__ended_at__lt": cutoff}
    yield "session events", SessionEvent.objects.filter(**finished)
    yield "checkpoints", Checkpoint.objects.filter(**finished)
    yield "job successes", Success.objects.filter(stopped__lt=cutoff)
    yield "job failures", Failure.objects.filter(stopped__lt=cutoff)
    # When it stopped being live: removed_at (set last), else merged_at; created only for rows that lack both.
    yield "worktrees", (Worktree.objects.exclude(status__in=LIVE_WORKTREE)
                        .alias(ended=Coalesce("removed_at", "merged_at", "created")).filter(ended__lt=cutoff))
    audit = _audit_model()
    if audit is not None:
        yield "audit events", audit.objects.filter(created__lt=cutoff)


def _audit_model() -> type | None:
    # The audit log is another app's concern and may be absent from a deployment's version: skip it then.
    try:
        return apps.get_model("core", "AuditEvent")
    except LookupError:
        return None


def _delete(queryset: QuerySet, *, dry_run: bool) -> int:
    """Delete in batches of BATCH_SIZE, each in its own transaction, so a big backlog never holds long locks."""
    if dry_run:
        return queryset.count()
    deleted = 0
    ids = queryset.order_by("pk").values_list("pk", flat=True)
    while True:
        with transaction.atomic():
            batch = list(ids[:BATCH_SIZE])
            count = queryset.model._base_manager.filter(pk__in=batch).delete()[0] if batch else 0
        deleted += count
        if count == 0:  # nothing left (or nothing deletable): never loop on the same batch
            return deleted


# ------------------------------------------------------------------------------------------- worktree directories


def _worktree_directories(worktrees: QuerySet, *, dry_run: bool) -> int:
    """Remove directories of finished worktrees that are still on disk but no longer registered with git."""
    removed = 0
    rows = worktrees.select_related("project").order_by("project_id", "pk")
    by_project: dict[int, dict[str, Worktree]] = {}
    for row in rows.iterator():
        if _on_disk(Path(row.path)):  # one row per path: a branch merged twice has two rows and one directory
            by_project.setdefault(row.project_id, {}).setdefault(row.path, row)
    for stale in by_project.values():
        removed += _project_directories(list(stale.values()), dry_run=dry_run)
    return removed


def _on_disk(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _project_directories(stale: list[Worktree], *, dry_run: bool) -> int:
    project = stale[0].project
    try:
        with repo_lock(project, timeout=LOCK_TIMEOUT):  # no worktree is created at a path while we look at it
            return sum(_remove_stray(row, dry_run=dry_run) for row in stale)
    except (ConflictError, GitError):
        return 0  # busy or unreadable repository: leave its directories for the next prune


def _remove_stray(row: Worktree, *, dry_run: bool) -> int:
    path = Path(row.path)
    repo = Path(row.project.repo_path)
    # Looked at again under the lock: a worker may have removed or reused the path since it was listed.
    if not _on_disk(path) or not _is_ours(row, repo) or _in_use(row, repo):
        return 0
    if not dry_run:
        _remove_path(path)
    return 1


def _is_ours(row: Worktree, repo: Path) -> bool:
    # Only the path YokeFlow itself would give this branch: a row pointing anywhere else is never followed.
    try:
        return Path(row.path) == gitops.worktree_path(repo, row.branch)
    except GitError:
        return False


def _in_use(row: Worktree, repo: Path) -> bool:
    """Registered with git, or the path of a live worktree (a later one on the same branch)."""
    if Worktree.objects.filter(path=row.path, status__in=LIVE_WORKTREE).exists():
        return True
    wanted = Path(row.path).resolve()
    return any(info.path.resolve() == wanted for info in gitops.worktree_list(repo))  # GitError: caller skips


def _remove_path(path: Path) -> None:
    if path.is_symlink() or path.is_file():  # never follow a link out of the worktrees directory
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
