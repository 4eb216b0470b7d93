"""Writes for agent sessions: lifecycle and leases, the gapless transcript, checkpoints and per-call costs."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.agents.models import (
    SESSION_TRANSITIONS,
    AgentCost,
    AgentSession,
    Checkpoint,
    SessionEvent,
    SessionKind,
    SessionStatus,
    lease_cutoff,
)
from apps.agents.pricing import TokenUsage, cost_of, is_long_prompt, price_for
from apps.core import metrics
from apps.core.audit import audit_record
from apps.core.errors import ConflictError, InvalidTransitionError, ValidationError
from apps.core.models import AuditAction
from apps.core.redaction import redact, redact_value
from apps.projects.events import event_emit
from apps.projects.models import EventKind, Project, Task
from apps.projects.services import project_status_move, task_transition

Status = SessionStatus


def json_safe(value: Any) -> Any:
    """PostgreSQL's JSON cannot hold NUL characters: command output and model text may contain them."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def worker_identity() -> str:
    """Who holds a lease: host and process, so a stuck lease names the machine to look at."""
    return f"{socket.gethostname()}:{os.getpid()}"


def session_create(
    *, project: Project, kind: str, model: str, provider: str, task: Task | None = None, workdir: str = "",
    model_tier: str = "", model_reason: str = "", task_type: str = "",
) -> AgentSession:
    if kind not in SessionKind.values:
        raise ValidationError(f"kind: must be one of {', '.join(SessionKind.values)}", code="invalid_fields")
    if kind != SessionKind.PLANNING and task is None:
        raise ValidationError("task: a coding session needs a task", code="invalid_fields")
    return AgentSession.objects.create(
        project=project, task=task, kind=kind, model=model, provider=provider, workdir=workdir,
        model_tier=model_tier, model_reason=model_reason, task_type=task_type,
    )


def _check_move(session: AgentSession, new: str) -> None:
    if new not in SESSION_TRANSITIONS[session.status]:
        allowed = ", ".join(sorted(SESSION_TRANSITIONS[session.status])) or "none (it has finished)"
        raise InvalidTransitionError(
            f"session {session.pk} cannot go from {session.status} to {new}; allowed: {allowed}",
            details={"from": session.status, "to": new, "allowed": sorted(SESSION_TRANSITIONS[session.status])},
        )


def session_transition(
    *, session: AgentSession, status: str, owner: str | None = None, **fields: Any
) -> AgentSession:
    """Move a session (conditional on the status we read, so a concurrent move makes this one fail clearly).

    With `owner`, also conditional on still holding the lease: a worker that lost it cannot finish the session.
    """
    _check_move(session, status)
    now = timezone.now()
    if status in (Status.COMPLETED, Status.FAILED, Status.CANCELLED):
        fields.setdefault("ended_at", now)
    if status in (Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.PAUSED):
        # Metrics are never null: however a session stops, it has a duration (work time so far when paused).
        started = session.started_at or now
        fields.setdefault("duration_ms", max(0, int((fields.get("ended_at", now) - started).total_seconds() * 1000)))
    if fields.get("error"):
        fields["error"] = redact(str(fields["error"]))  # error texts quote tool output, which may hold a key
    rows = AgentSession.objects.filter(pk=session.pk, status=session.status)
    if owner is not None:
        rows = rows.filter(lease_owner=owner)
    changed = rows.update(status=status, updated=now, **fields)
    if changed != 1:
        raise ConflictError(f"session {session.pk} changed while moving it to {status}; reload and retry")
    session.refresh_from_db()
    status_event(session)
    return session


def status_event(session: AgentSession) -> None:
    """The live pages' and the feed's record of an agent starting, pausing or finishing."""
    event_emit(project_id=session.project_id, kind=EventKind.AGENT_STATUS, task=session.task,
               session_id=session.pk, status=session.status, kind_of_session=session.kind, model=session.model,
               tier=session.model_tier, turns=session.turns, reason=session.stop_reason)


def session_claim(*, session: AgentSession, owner: str | None = None, force: bool = False) -> AgentSession:
    """Take the session's lease: a queued session starts, a running one whose lease expired is taken over.

    `force` takes over a running session whatever its heartbeat (an operator knows its worker is gone).
    """
    owner = owner or worker_identity()
    now = timezone.now()
    lease = {"lease_owner": owner, "heartbeat_at": now, "updated": now, "attempts": F("attempts") + 1}
    if AgentSession.objects.filter(pk=session.pk, status=Status.QUEUED).update(
        status=Status.RUNNING, started_at=Coalesce("started_at", now), **lease
    ):
        session.refresh_from_db()
        status_event(session)
        return session
    stale = Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=lease_cutoff())
    running = AgentSession.objects.filter(pk=session.pk, status=Status.RUNNING)
    if (running if force else running.filter(stale)).update(**lease):
        session.refresh_from_db()
        return session
    session.refresh_from_db()
    if session.status == Status.RUNNING:
        age = int((now - session.heartbeat_at).total_seconds()) if session.heartbeat_at else 0
        raise ConflictError(
            f"session {session.pk} is running on {session.lease_owner} (heartbeat {age} s ago); "
            f"it can be taken over after {settings.SESSION_LEASE_SECONDS} s without a heartbeat",
            code="session_leased",
        )
    raise InvalidTransitionError(f"session {session.pk} is {session.status}; only queued or running sessions run")


def _cancel_task_of(session: AgentSession) -> None:
    """A session cancelled without running takes its task with it, so the run is not left waiting for it."""
    task = Task.objects.filter(pk=session.task_id, status__in=(Task.Status.RUNNING, Task.Status.PAUSED)).first()
    if task is None:
        return
    task_transition(task=task, to=Task.Status.CANCELLED, error="its session was cancelled")
    project = session.project
    if project.status == Project.Status.RUNNING and not project.tasks.filter(
        status__in=(Task.Status.RUNNING, Task.Status.MERGING)
    ).exists():
        project_status_move(project=project, to=Project.Status.PAUSED)


def session_heartbeat(*, session: AgentSession) -> bool:
    """Renew the lease. False when someone else took it over (this worker must stop)."""
    return bool(
        AgentSession.objects.filter(pk=session.pk, lease_owner=session.lease_owner).update(
            heartbeat_at=timezone.now()
        )
    )


def session_request_cancel(*, session: AgentSession) -> AgentSession:
    """Cancel now if it has not started; otherwise ask the loop to stop at its next step."""
    if session.status in (Status.QUEUED, Status.PAUSED):
        with transaction.atomic():
            session = session_transition(session=session, status=Status.CANCELLED, stop_reason="cancelled",
                                         error="cancelled before it ran" if session.status == Status.QUEUED
                                         else "cancelled while paused")
            _cancel_task_of(session)
            _audit_cancel(session)
        return session
    if session.status != Status.RUNNING:
        raise InvalidTransitionError(f"session {session.pk} is {session.status}; there is nothing to cancel")
    with transaction.atomic():
        AgentSession.objects.filter(pk=session.pk).update(cancel_requested=True)
        session.refresh_from_db()
        _audit_cancel(session)
    return session


def _audit_cancel(session: AgentSession) -> None:
    audit_record(action=AuditAction.SESSION_CANCELLED, target=f"session #{session.pk}", project=session.project_id,
                 details={"status": session.status, "task": session.task_id})


def session_request_pause(*, session: AgentSession, by: str, reason: str = "") -> AgentSession:
    """Ask a queued or running session to pause before its next model call (a guard turns this into a pause)."""
    if session.status not in (Status.QUEUED, Status.RUNNING):
        raise InvalidTransitionError(f"session {session.pk} is {session.status}; only a queued or running session "
                                     "can be paused", code="not_pausable")
    by = (by or "").strip()
    if not by:
        raise ValidationError("by: say who pauses the session", code="invalid_fields", details={"field": "by"})
    text = f"{by}: {reason.strip()}" if reason.strip() else by
    with transaction.atomic():
        AgentSession.objects.filter(pk=session.pk).update(pause_requested=text[:300], updated=timezone.now())
        audit_record(action=AuditAction.SESSION_PAUSED, target=f"session #{session.pk}", project=session.project_id,
                     actor=by, details={"reason": reason.strip(), "status": session.status})
    session.pause_requested = text[:300]
    return session


def events_append(*, session: AgentSession, events: Iterable[tuple[str, dict]]) -> list[SessionEvent]:
    """Append events with the next sequence numbers. The counter and the rows commit together, so seq has no gaps
    even if a worker dies between two calls."""
    events = list(events)
    if not events:
        return []
    with transaction.atomic():
        AgentSession.objects.filter(pk=session.pk).update(last_seq=F("last_seq") + len(events))
        last = AgentSession.objects.values_list("last_seq", flat=True).get(pk=session.pk)
        first = last - len(events) + 1
        rows = SessionEvent.objects.bulk_create(
            SessionEvent(session_id=session.pk, seq=first + i, type=kind, payload=redact_value(json_safe(payload)))
            for i, (kind, payload) in enumerate(events)
        )
    session.last_seq = last
    return rows


def checkpoint_save(*, session: AgentSession, turn: int, messages: list[dict], step: dict) -> Checkpoint:
    checkpoint, _ = Checkpoint.objects.update_or_create(
        session=session,
        defaults={"turn": turn, "event_seq": session.last_seq, "messages": redact_value(json_safe(messages)),
                  "step": json_safe(step)},
    )
    AgentSession.objects.filter(pk=session.pk).update(turns=turn, heartbeat_at=timezone.now())
    session.turns = turn
    return checkpoint


def checkpoint_grant_turns(*, session: AgentSession, turns: int) -> int:
    """Raise a capped session's turn cap to its checkpoint's turn + `turns` (a person resumed it); the new cap."""
    with transaction.atomic():
        checkpoint = Checkpoint.objects.select_for_update().filter(session=session).first()
        if checkpoint is None:
            return turns
        step = dict(checkpoint.step)
        state = dict(step.get("state") or {})
        state["turn_cap"] = checkpoint.turn + turns
        step["state"] = state
        Checkpoint.objects.filter(pk=checkpoint.pk).update(step=step, updated=timezone.now())
    return state["turn_cap"]


def call_record(
    *, session: AgentSession, turn: int, model: str, usage: TokenUsage, latency_ms: int, simulated: bool
) -> AgentCost:
    """One row per LLM call at the rates in force today; the session's totals move in the same transaction."""
    price = price_for(model, timezone.localdate())
    cost = cost_of(price, usage) if price else Decimal(0)
    with transaction.atomic():
        row = AgentCost.objects.create(
            session=session, project_id=session.project_id, task_id=session.task_id, price=price, model=model,
            simulated=simulated, turn=turn, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens, cache_write_tokens=usage.cache_write_tokens,
            cache_write_1h_tokens=usage.cache_write_1h_tokens, cost_usd=cost, latency_ms=latency_ms,
            long_prompt=bool(price and is_long_prompt(price, usage)),
        )
        AgentSession.objects.filter(pk=session.pk).update(
            input_tokens=F("input_tokens") + usage.input_tokens,
            output_tokens=F("output_tokens") + usage.output_tokens,
            cache_read_tokens=F("cache_read_tokens") + usage.cache_read_tokens,
            cache_write_tokens=F("cache_write_tokens") + usage.cache_write_tokens,
            cost_usd=F("cost_usd") + cost,
        )
        session.refresh_from_db(fields=["input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
                                        "cost_usd"])
        metrics.observe_llm_call(model=model, seconds=latency_ms / 1000, usage=usage, cost=cost)
        event_emit(project_id=session.project_id, kind=EventKind.COST_UPDATE, session_id=session.pk,
                   task=session.task, model=model, turn=turn, cost_usd=cost, session_cost_usd=session.cost_usd,
                   input_tokens=usage.input_tokens, output_tokens=usage.output_tokens, simulated=simulated)
    return row
