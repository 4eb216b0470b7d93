"""Status moves by table: each stateful model lists the moves it allows (`TASK_TRANSITIONS`,
`PROJECT_TRANSITIONS`, …) and its app's one `*_move` function calls `status_move` here.

A move is a conditional UPDATE on the status last read, so of two writers racing, one wins; the other re-reads
and tries again from where the row is now — which may make its move unnecessary (already there), allowed (another
legal move happened first) or refused (`InvalidTransitionError`, with what is allowed from there).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import models
from django.utils import timezone

from apps.core.errors import ConflictError, InvalidTransitionError, NotFoundError, ValidationError

Table = Mapping[str, frozenset[str]]
ATTEMPTS = 5  # re-reads before a move that keeps losing races gives up (each loss means another move landed)


def transition_check(table: Table, current: str, target: str, *, noun: str, stay: bool = True) -> None:
    """Refuse a status the table does not know, and a move it does not allow, with what is allowed instead.
    Staying in the same status is allowed unless `stay` is False (then the table must list it)."""
    if target not in table:
        raise ValidationError(f"unknown {noun} status {target!r}; known: {', '.join(table)}", code="invalid_status")
    if not (stay and target == current) and target not in table.get(current, frozenset()):
        allowed = ", ".join(sorted(table.get(current, frozenset()))) or "none (final state)"
        raise InvalidTransitionError(f"a {noun} cannot go from {current} to {target}; allowed: {allowed}",
                                     details={"from": current, "to": target,
                                              "allowed": sorted(table.get(current, frozenset()))})


def status_move(row: models.Model, target: str, table: Table, *, noun: str, **changes: Any) -> str | None:
    """Move `row` to `target` (with `changes` written alongside) if the table allows it from its current status.

    Returns the status it left, or None when it was already there (a repeated move is no error: two workers
    finishing the same run agree; the `changes` are still written). `row.status` and the changed fields are
    updated in memory."""
    model = type(row)
    stamp = {"updated": timezone.now()} if any(f.name == "updated" for f in model._meta.concrete_fields) else {}
    for _ in range(ATTEMPTS):
        current = row.status
        transition_check(table, current, target, noun=noun)
        values = {"status": target, **changes, **stamp}
        if current == target and not changes:
            return None
        if model._default_manager.filter(pk=row.pk, status=current).update(**values) == 1:
            for name, value in values.items():
                setattr(row, name, value)
            return None if current == target else current
        fresh = model._default_manager.filter(pk=row.pk).values_list("status", flat=True).first()
        if fresh is None:
            raise NotFoundError(f"{noun} #{row.pk} no longer exists")
        row.status = fresh
    raise ConflictError(f"{noun} #{row.pk} kept changing while moving it to {target}; reload and retry",
                        code="status_changed")
