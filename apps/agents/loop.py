"""The agent loop: call the model, record every block, run its tools, checkpoint, until the work is done.

The loop knows nothing of orchestration, interventions or learning. They plug in through arguments:
- `guards` are called before every model call ("before_call"), after every turn's tools ("after_tools") and
  when the provider failed ("provider_error", `state.provider_error` set); the first `Verdict` returned pauses
  or fails the session (retry loops, critical errors, rate limits, …);
- `hooks` are called with ("turn", state) after each checkpoint, ("completing", state) just before a session
  counts as completed (the orchestration commits the work there) and ("end", state) once the session ends.

Stops: the brief's `finished` check passes on end_turn (e.g. the task was reported done), the turn cap (a pause:
resuming grants more turns), a cancel request, a guard's verdict (the budget is one: it sees the next request in
`state.request` before it is sent), a provider error the SDK's retries could not cure, or the agent asking for
help. Every way out leaves the session finished (or paused) with its metrics and a `session_end` event; a crash
in between leaves a checkpoint from which `session_run` continues the same conversation. A reply is checkpointed
with its cost in one transaction before its tools run, and each tool result with the checkpoint, so a continued
session never asks for (or pays for) a recorded reply again and runs only the tool calls without a result.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from django import db
from django.conf import settings
from django.db import transaction

from apps.agents.loop_types import Brief, GiveUp, Guard, Hook, LoopConfig, LoopState, Outcome, ToolCall
from apps.agents.models import AgentSession, Checkpoint, SessionStatus
from apps.agents.prompts import render
from apps.agents.providers import ModelReply, ModelRequest, Provider
from apps.agents.sandbox import kill_commands
from apps.agents.services import (
    call_record,
    checkpoint_save,
    events_append,
    session_claim,
    session_heartbeat,
    session_transition,
)
from apps.agents.tools import ToolContext, tool_execute
from apps.core import metrics
from apps.core.db import is_connection_error
from apps.core.errors import ConflictError, ProviderError, YokeFlowError
from apps.core.faults import fault_point

log = logging.getLogger(__name__)

Status = SessionStatus


class _Stop(Exception):
    def __init__(self, status: str, reason: str, message: str = "", details: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.reason, self.message, self.details = status, reason, message, details or {}


def _block_events(content: list[dict]) -> list[tuple[str, dict]]:
    events = []
    for block in content:
        kind = block.get("type", "unknown")
        if kind == "thinking":
            events.append(("thinking", {"text": block.get("thinking", "")}))
        elif kind == "text":
            events.append(("text", {"text": block.get("text", "")}))
        elif kind == "tool_use":
            events.append(("tool_use", {"id": block["id"], "name": block["name"], "input": block.get("input")}))
        else:
            events.append((kind, {"block": {k: v for k, v in block.items() if k != "data"}}))
    return events


def _start(session: AgentSession, brief: Brief, resume_message: str | None, *, pending: bool = False
           ) -> list[dict]:
    """Fresh sessions open the conversation; taken-over ones continue their checkpoint plus a resume message.

    With `pending` the checkpoint ends with a reply whose tools did not all run: the conversation is returned as it
    is, and the resume note follows the tool results (`Loop._finish_pending`)."""
    checkpoint = Checkpoint.objects.filter(session=session).first()
    if checkpoint is None and session.last_seq == 0:
        events_append(session=session, events=[
            ("session_start", {"kind": session.kind, "model": session.model_label, "attempt": session.attempts}),
            ("system", {"text": "\n\n".join(block["text"] for block in brief.system)}),
            ("user", {"text": brief.opening}),
        ])
        return [{"role": "user", "content": brief.opening}]
    messages = list(checkpoint.messages) if checkpoint else [{"role": "user", "content": brief.opening}]
    turn = checkpoint.turn if checkpoint else 0
    note = resume_message or render("resume.md", turn=turn)
    events_append(session=session, events=[("resume", {"from_turn": turn, "attempt": session.attempts,
                                                       "model": session.model_label, "text": note})])
    if pending:
        return [*messages, {"role": "user", "content": note}]
    last = messages[-1]
    if last["role"] == "user" and isinstance(last["content"], list):
        last = {"role": "user", "content": [*last["content"], {"type": "text", "text": note}]}
        messages[-1] = last
    elif last["role"] == "user":
        messages[-1] = {"role": "user", "content": f"{last['content']}\n\n{note}"}
    else:
        messages.append({"role": "user", "content": note})
    return messages


class _Heartbeat:
    """Renews the lease every third of its length while a long model call or command runs, and watches for a
    cancel request: when one arrives, the session's running commands are killed at once (the loop then stops at
    its next check), so a cancel never waits for a long command.

    Runs in a thread with its own database connection; it first waits one poll interval, so short sessions (and
    tests inside a transaction) rarely see it touch the database.
    """

    POLL = 1.0  # seconds between cancel checks

    def __init__(self, session: AgentSession) -> None:
        self.session = session
        self.interval = max(1.0, settings.SESSION_LEASE_SECONDS / 3)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"heartbeat-{session.pk}", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=self.interval)

    def _beat(self) -> None:
        last_renewal = time.monotonic()
        try:
            while not self.stopped.wait(self.POLL):
                try:
                    if AgentSession.objects.filter(pk=self.session.pk, cancel_requested=True).exists():
                        kill_commands(self.session.pk)
                    if time.monotonic() - last_renewal >= self.interval:
                        session_heartbeat(session=self.session)
                        last_renewal = time.monotonic()
                except db.DatabaseError as exc:  # e.g. a locked SQLite file; the next poll tries again
                    log.warning("heartbeat of session %s: %s", self.session.pk, exc)
        finally:
            db.connections.close_all()


class Loop:
    def __init__(self, session: AgentSession, provider: Provider, brief: Brief, context: ToolContext,
                 config: LoopConfig, guards: Sequence[Guard], hooks: Sequence[Hook]) -> None:
        self.session, self.provider, self.brief = session, provider, brief
        self.config, self.guards, self.hooks = config, guards, hooks
        self.state = LoopState(session=session, context=context, messages=[])

    # -- checks between steps -------------------------------------------------------------------------
    def _check_cancel(self) -> None:
        if AgentSession.objects.filter(pk=self.session.pk, cancel_requested=True).exists():
            raise _Stop(Status.CANCELLED, "cancelled", "cancel requested")

    def _check_guards(self, phase: str) -> None:
        for guard in self.guards:
            verdict = guard(phase, self.state)
            if verdict:
                events_append(session=self.session, events=[("guard", {"phase": phase, **verdict.__dict__})])
                status = Status.PAUSED if verdict.action == "pause" else Status.FAILED
                raise _Stop(status, verdict.kind, verdict.reason, verdict.details)

    def _check_limits(self) -> None:
        # The cap is kept in the checkpointed state, so resuming a capped session can grant it more turns.
        cap = int(self.state.context.state.get("turn_cap") or self.config.max_turns)
        if self.state.turn >= cap:
            raise _Stop(Status.PAUSED, "turn_cap", f"paused at the turn cap of {cap} turns",
                        {"turns": self.state.turn, "turn_cap": cap})

    # -- one turn -------------------------------------------------------------------------------------
    def _request(self) -> ModelRequest:
        return ModelRequest(model=self.session.model, system=self.brief.system, messages=self.state.messages,
                            tools=[tool.schema() for tool in self.brief.tools.values()],
                            max_tokens=self.config.max_tokens)

    def _call(self, request: ModelRequest) -> ModelReply:
        try:
            return self.provider.complete(request)
        except ProviderError as exc:
            events_append(session=self.session, events=[("llm_error", {"code": exc.code, "message": exc.message,
                                                                       "details": exc.details})])
            self.state.provider_error = exc  # guards may turn it into a pause (rate limit, circuit, bad key)
            try:
                self._check_guards("provider_error")
            finally:
                self.state.provider_error = None
            raise _Stop(Status.FAILED, exc.code, exc.message) from exc

    def _record(self, reply: ModelReply) -> None:
        turn = self.state.turn
        cost = call_record(session=self.session, turn=turn, model=self.session.model, usage=reply.usage,
                           latency_ms=reply.latency_ms, simulated=self.provider.simulated)
        events_append(session=self.session, events=[*_block_events(reply.content), ("llm_call", {
            "turn": turn, "model": self.session.model_label, "stop_reason": reply.stop_reason,
            "usage": reply.usage.as_dict(), "cost_usd": str(cost.cost_usd), "latency_ms": reply.latency_ms,
            "simulated": self.provider.simulated, "request_id": reply.request_id,
        })])

    def _run_tools(self, tool_uses: list[dict], stop_reason: str, done: list[dict] | None = None) -> None:
        """Run the reply's tool calls; each result is recorded with the pending checkpoint in one transaction, so
        a continued session runs only the calls whose results are missing (`done`)."""
        results = list(done or [])
        finished = {block["tool_use_id"] for block in results}
        calls = [ToolCall(b["name"], b.get("input"), r["content"], r["is_error"])
                 for b in tool_uses for r in results if r["tool_use_id"] == b["id"]]
        for block in tool_uses:
            if block["id"] in finished:
                continue
            self._check_cancel()
            started = time.perf_counter()
            result = tool_execute(self.brief.tools, self.state.context, block["name"], block.get("input"))
            metrics.observe_tool(tool=block["name"], seconds=time.perf_counter() - started, failed=result.is_error)
            calls.append(ToolCall(block["name"], block.get("input"), result.content, result.is_error))
            results.append(result.block(block["id"]))
            with transaction.atomic():
                events_append(session=self.session, events=[("tool_result", {
                    "tool_use_id": block["id"], "name": block["name"], "is_error": result.is_error,
                    "content": result.content})])
                self._save_pending(stop_reason, results)
            fault_point("after-tool-result")
            session_heartbeat(session=self.session)
        self.state.messages.append({"role": "user", "content": results})
        self.state.last_calls = calls

    def _save_pending(self, stop_reason: str, results: list[dict]) -> None:
        """Checkpoint a turn whose reply is recorded but whose tools have not all run."""
        step = {"turn": self.state.turn, "stop_reason": stop_reason, "reasks": self.state.reasks,
                "state": self.state.context.state, "pending": {"results": results}}
        checkpoint_save(session=self.session, turn=self.state.turn, messages=self.state.messages, step=step)

    def _reask_or_finish(self) -> None:
        try:
            question = self.brief.finished(self.state.context)
        except GiveUp as give_up:
            raise _Stop(Status.FAILED, give_up.reason, give_up.message) from None
        if question is None:
            raise _Stop(Status.COMPLETED, "done", "finished")
        if self.state.reasks >= self.brief.max_reasks:
            raise _Stop(Status.FAILED, "not_finished", f"ended without finishing after {self.state.reasks + 1} "
                        f"asks: {question}")
        self.state.reasks += 1
        self.state.messages.append({"role": "user", "content": question})
        events_append(session=self.session, events=[("user", {"text": question, "reask": self.state.reasks})])

    def _turn(self) -> None:
        self._check_cancel()
        self._check_limits()
        self.state.request = request = self._request()
        self._check_guards("before_call")
        reply = self._call(request)
        self._check_lease()  # a worker that lost its lease while waiting must not act on the reply
        self.state.turn += 1
        self.state.last_reply = reply
        with transaction.atomic():  # the call's cost, its blocks and the checkpoint holding it: all or nothing
            self._record(reply)
            self.state.messages.append({"role": "assistant", "content": reply.content})
            if reply.tool_uses:
                self._save_pending(reply.stop_reason, [])
        if reply.tool_uses:
            self._run_tools(reply.tool_uses, reply.stop_reason)
        else:
            self.state.last_calls = []
        self._end_turn(reply.stop_reason, bool(reply.tool_uses))

    def _end_turn(self, stop_reason: str, used_tools: bool) -> None:
        help_wanted = self.state.context.state.pop("help", None)  # one-shot signals: not kept in the checkpoint
        give_up = self.state.context.state.pop("give_up", None)
        self._checkpoint(stop_reason)
        if help_wanted:
            raise _Stop(Status.PAUSED, "help_requested", help_wanted)
        if give_up:
            raise _Stop(Status.FAILED, give_up["reason"], give_up["message"])
        if used_tools:
            self._check_cancel()  # a cancel wins over what the killed command looks like (e.g. SIGKILL)
            self._check_guards("after_tools")
        else:
            self._reask_or_finish()

    def _finish_pending(self, pending: dict) -> None:
        """Continue a turn cut off while its tools ran: the recorded reply is not asked for (or paid) again, only
        the tool calls without a recorded result run; the resume note follows their results."""
        note = self.state.messages.pop()["content"]
        tool_uses = [b for b in self.state.messages[-1]["content"] if b.get("type") == "tool_use"]
        done = list(pending.get("results") or [])
        missing = [b for b in tool_uses if b["id"] not in {r["tool_use_id"] for r in done}]
        if missing:
            events_append(session=self.session, events=[("note", {"text": (
                "The previous worker stopped during this turn's tools. Not asked again: the model's reply. Run "
                f"again: {', '.join(b['name'] for b in missing)} (a command that was running when the worker "
                "stopped may have done part of its work already).")})])
        self._run_tools(tool_uses, "tool_use", done)
        self.state.messages[-1]["content"].append({"type": "text", "text": note})
        self._end_turn("tool_use", True)

    def _check_lease(self) -> None:
        if not session_heartbeat(session=self.session):
            raise _Stop(Status.RUNNING, "lease_lost", "another worker took this session over")

    def _checkpoint(self, stop_reason: str) -> None:
        # The tools' outcomes (task reported done, plan accepted, tries) are part of the conversation's state:
        # a session continued elsewhere must remember them.
        step = {"turn": self.state.turn, "stop_reason": stop_reason,
                "tools": [call.name for call in self.state.last_calls], "reasks": self.state.reasks,
                "state": self.state.context.state}
        self._check_lease()
        checkpoint_save(session=self.session, turn=self.state.turn, messages=self.state.messages, step=step)
        for hook in self.hooks:
            hook("turn", self.state)

    # -- the whole session -----------------------------------------------------------------------------
    def _restore(self) -> dict | None:
        """Turn, re-asks and tool state from the checkpoint; returns its pending turn, if it has one."""
        checkpoint = Checkpoint.objects.filter(session=self.session).first()
        if checkpoint is None:
            return None
        self.state.turn = checkpoint.turn
        self.state.reasks = int(checkpoint.step.get("reasks", 0))
        self.state.context.state.update(checkpoint.step.get("state") or {})
        return checkpoint.step.get("pending")

    def run(self, resume_message: str | None) -> Outcome:
        try:
            pending = self._restore()
            self.state.messages = _start(self.session, self.brief, resume_message, pending=pending is not None)
            with _Heartbeat(self.session):
                if pending is not None:
                    self._finish_pending(pending)
                while True:
                    self._turn()
        except _Stop as stop:
            return self._finish(stop)
        except db.DatabaseError as exc:
            if is_connection_error(exc):
                raise  # the database went away: nothing can be recorded now; the job reconnects and continues
            self._finish(_Stop(Status.FAILED, "internal_error", f"{type(exc).__name__}: {exc}"))
            raise
        except Exception as exc:
            self._finish(_Stop(Status.FAILED, "internal_error", f"{type(exc).__name__}: {exc}"))
            raise

    def _finish(self, stop: _Stop) -> Outcome:
        outcome = Outcome(stop.status, stop.reason, stop.message, self.state.context.state, stop.details)
        if stop.status == Status.RUNNING:  # lease lost: the new owner finishes it
            return outcome
        if stop.status == Status.COMPLETED:
            stop, outcome = self._completing(stop, outcome)
        self.session.refresh_from_db()
        error = "" if stop.status == Status.COMPLETED else stop.message
        try:
            session_transition(session=self.session, status=stop.status, stop_reason=stop.reason, error=error,
                               turns=self.state.turn, owner=self.session.lease_owner)
        except ConflictError:  # another worker took the session over meanwhile: it finishes the session
            return Outcome(Status.RUNNING, "lease_lost", "another worker took this session over", outcome.state)
        s = self.session
        events_append(session=s, events=[("session_end", {
            "status": s.status, "reason": stop.reason, "message": stop.message, "turns": s.turns,
            "input_tokens": s.input_tokens, "output_tokens": s.output_tokens,
            "cache_read_tokens": s.cache_read_tokens, "cache_write_tokens": s.cache_write_tokens,
            "cost_usd": str(s.cost_usd), "duration_ms": s.duration_ms})])
        for hook in self.hooks:
            hook("end", self.state)
        return outcome


    def _completing(self, stop: _Stop, outcome: Outcome) -> tuple[_Stop, Outcome]:
        """The "completing" hooks (e.g. commit the work) run before the session counts as completed; one that
        fails with a YokeFlowError fails the session with its reason instead."""
        try:
            for hook in self.hooks:
                hook("completing", self.state)
        except YokeFlowError as exc:
            stop = _Stop(Status.FAILED, exc.code, exc.message)
            return stop, Outcome(stop.status, stop.reason, stop.message, self.state.context.state)
        return stop, outcome


def session_run(
    *, session: AgentSession, provider: Provider, brief: Brief, context: ToolContext,
    config: LoopConfig | None = None, guards: Sequence[Guard] = (), hooks: Sequence[Hook] = (),
    resume_message: str | None = None, force: bool = False,
) -> Outcome:
    """Run (or continue) one session to its end. Takes the session's lease first: a queued session starts, a
    running one whose worker is gone is continued from its checkpoint."""
    session = session_claim(session=session, force=force)
    context.session = session
    return Loop(session, provider, brief, context, config or LoopConfig(), guards, hooks).run(resume_message)
