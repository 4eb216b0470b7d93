"""Detectors: loop guards that stop an agent before it burns money on something it cannot fix by itself.

Every guard is a callable `(phase, state) -> Verdict | None` handed to the agent loop (which knows nothing of
interventions). A "pause" verdict stops the session as paused; the orchestrator then records the pause, frees
the worker and tells people.

- `RetryTracker` (after tools): the same failing call (normalized signature) failed `max_retries` times
  (default 2, so no third identical try) → `retry_limit`.
- `CriticalErrors` (after tools, provider errors): a failing call's output matches `CRITICAL_PATTERNS` (each with
  its threshold and recovery), or the provider refuses the key → `critical_error`.
- `ProviderGuard` (before a call, provider errors): the account is on hold (rate limit, overload, open circuit),
  or this call put it on hold → `rate_limit` / `circuit_open`, resumed automatically when the hold ends.
- `BudgetGuard` (before a call): what the project spent plus the worst case of the call about to be made would
  exceed its budget → `budget`, with the dollars to approve; so the budget is overshot by one call at most (only
  when a call costs more than its worst-case estimate), and never by a call started with the money gone.
- In the loop itself: the turn cap `AGENT_MAX_TURNS` → `turn_cap` (resuming grants as many more turns); the
  agent's `request_help` (or a "blocked" report) → `help_requested`.

Trackers live for one run of a session (one job): a person's resume starts the counts afresh, which is the point
of resuming with notes.
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone

from apps.agents.loop_types import LoopState, ToolCall, Verdict
from apps.agents.models import AgentSession
from apps.agents.pricing import call_worst_case, price_for
from apps.agents.selectors import project_spent
from apps.interventions import holds
from apps.interventions.services import approval_for
from apps.projects.models import Project

OUTPUT_TAIL_LINES = 15


def _tail(text: str, lines: int = OUTPUT_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])[-2000:]


def _command_of(call: ToolCall) -> str:
    if call.name == "run_command" and isinstance(call.input, dict):
        return str(call.input.get("command", ""))
    return ""


# ------------------------------------------------------------------------------------------------ retry tracker

_VOLATILE = (
    (re.compile(r"/tmp/[\w.\-/]+"), "/tmp/*"),  # temp paths differ between otherwise identical tries
    (re.compile(r"\b[0-9a-f]{12,}\b"), "<id>"),  # hashes, uuids without dashes
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<id>"),
)
_NOISE = re.compile(r"\s*(?:2>&1|>\s*/dev/null|\|\|\s*true|;\s*echo\s+\$\?)\s*$")


def command_signature(command: str) -> str:
    """The same command however it is spelled: whitespace collapsed, quoting normalized, a leading `cd X &&` and
    trailing noise (`2>&1`, `; echo $?`) dropped, temp paths and ids blanked."""
    text = command.strip()
    text = re.sub(r"^cd\s+\S+\s*&&\s*", "", text)
    while True:
        stripped = _NOISE.sub("", text)
        if stripped == text:
            break
        text = stripped
    try:
        text = " ".join(shlex.split(text))
    except ValueError:  # unbalanced quotes: keep the words as written
        text = " ".join(text.split())
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    return text


def call_signature(call: ToolCall) -> str:
    command = _command_of(call)
    if command:
        return command_signature(command)
    arguments = call.input if isinstance(call.input, dict) else {}
    shown = ", ".join(f"{key}={str(value)[:80]}" for key, value in sorted(arguments.items()) if key != "content")
    return f"{call.name}({shown})"


class RetryTracker:
    """Counts failing tool calls by signature; the `max_retries`-th identical failure pauses the session (the
    agent is told to diagnose after two tries: a third identical one is a loop). A success clears its count."""

    def __init__(self, max_retries: int | None = None) -> None:
        self.max_retries = max_retries or settings.INTERVENTION_MAX_RETRIES
        self.counts: dict[str, dict[str, Any]] = {}

    def stats(self) -> dict[str, dict[str, Any]]:
        return {signature: dict(entry) for signature, entry in self.counts.items()}

    def __call__(self, phase: str, state: LoopState) -> Verdict | None:
        if phase != "after_tools":
            return None
        for call in state.last_calls:
            signature = call_signature(call)
            if not call.is_error:
                self.counts.pop(signature, None)
                continue
            entry = self.counts.setdefault(signature, {"count": 0, "tool": call.name, "first_turn": state.turn})
            entry.update(count=entry["count"] + 1, last_turn=state.turn, last_error=_tail(call.content, 3))
            if entry["count"] >= self.max_retries:
                return self._verdict(signature, call, entry)
        return None

    def _verdict(self, signature: str, call: ToolCall, entry: dict[str, Any]) -> Verdict:
        what = f"`{signature}`" if _command_of(call) else f"the {call.name} call {signature}"
        return Verdict("pause", "retry_limit", f"{what} failed {entry['count']} times the same way",
                       {"signature": signature, "command": _command_of(call), "tool": call.name,
                        "output_tail": _tail(call.content), "retry_stats": self.stats()})


# ------------------------------------------------------------------------------------------------ critical errors


@dataclass(frozen=True)
class CriticalPattern:
    name: str
    regex: re.Pattern[str]
    threshold: int  # how many failing calls must match before the session pauses
    recovery: str  # the automatic recovery that may clear it ("" when only a person can)
    advice: str  # what a person should check, shown in the pause


def _p(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


_SERVICE = r"(?:postgres\w*|psycopg\w*|mysql|mariadb|redis|mongo\w*|database|:5432|:3306|:6379|:27017)"
_REFUSED = r"(?:connection refused|ECONNREFUSED|could not connect|can't connect|error 111)"

CRITICAL_PATTERNS: tuple[CriticalPattern, ...] = (
    CriticalPattern("jail_unavailable", _p(r"the command jail is unavailable"),
                    1, "", "the worker cannot run commands in the jail (bubblewrap): an operator must install or "
                    "enable it (see `yokeflow sandbox check`)"),
    CriticalPattern("address_in_use", _p(r"address already in use|EADDRINUSE|port \d+ is already (?:in use|allocated)"),
                    1, "free_port", "another process holds the port the command needs"),
    CriticalPattern("service_refused", _p(rf"{_SERVICE}.{{0,160}}{_REFUSED}|{_REFUSED}.{{0,160}}{_SERVICE}"),
                    1, "restart_service", "the database or cache the project needs is not running"),
    CriticalPattern("missing_module", _p(r"ModuleNotFoundError: No module named '([\w.]+)'|"
                                         r"ImportError: No module named '?([\w.]+)|Cannot find module '([^']+)'"),
                    2, "pip_install", "a dependency is not installed in the worktree's environment"),
    CriticalPattern("permission_denied", _p(r"permission denied|EACCES|operation not permitted"),
                    2, "", "the command needs rights the sandbox does not give"),
    CriticalPattern("disk_full", _p(r"no space left on device|ENOSPC|disk quota exceeded"),
                    1, "", "the disk (or quota) under the projects root is full"),
    CriticalPattern("out_of_memory", _p(r"MemoryError|cannot allocate memory|out of memory|ENOMEM|"
                                        r"killed by signal SIGKILL"),
                    1, "", "the command ran out of memory (or was killed for it)"),
)

# Provider errors no retry cures: the key or the account needs a person.
CRITICAL_PROVIDER_CODES = {"provider_auth": "the API key was refused", "provider_permission":
                           "the API key may not use this model or feature"}

_PORT_IN_TEXT = re.compile(r"(?:port\s*[=:]?\s*|:)(\d{2,5})\b", re.IGNORECASE)
_PORT_IN_COMMAND = re.compile(r"(?:^|[\s:=])(\d{4,5})\b")
_SERVICE_PORTS = {"postgres": 5432, "psycopg": 5432, "mysql": 3306, "mariadb": 3306, "redis": 6379, "mongo": 27017}


def _port(match: re.Match[str], text: str, command: str) -> int | None:
    line_start = text.rfind("\n", 0, match.start()) + 1
    line_end = text.find("\n", match.end())
    line = text[line_start: line_end if line_end != -1 else len(text)]
    found = _PORT_IN_TEXT.search(line) or _PORT_IN_COMMAND.search(command)
    if found:
        return int(found.group(1))
    lowered = match.group(0).lower()
    return next((port for name, port in _SERVICE_PORTS.items() if name in lowered), None)


def _module(match: re.Match[str]) -> str | None:
    name = next((group for group in match.groups() if group), None)
    return name.split(".")[0] if name else None


class CriticalErrors:
    """Pauses on infrastructure failures an agent cannot fix by retrying: see `CRITICAL_PATTERNS`."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}

    def __call__(self, phase: str, state: LoopState) -> Verdict | None:
        if phase == "provider_error":
            return self._provider(state)
        if phase != "after_tools":
            return None
        for call in state.last_calls:
            if call.is_error:
                verdict = self._scan(call)
                if verdict:
                    return verdict
        return None

    def _scan(self, call: ToolCall) -> Verdict | None:
        for pattern in CRITICAL_PATTERNS:
            match = pattern.regex.search(call.content)
            if not match:
                continue
            key = f"{pattern.name}:{_module(match) or ''}" if pattern.name == "missing_module" else pattern.name
            self.hits[key] = self.hits.get(key, 0) + 1
            if self.hits[key] >= pattern.threshold:
                return self._verdict(pattern, match, call)
            return None  # the first pattern that matches decides, even when below its threshold
        return None

    def _verdict(self, pattern: CriticalPattern, match: re.Match[str], call: ToolCall) -> Verdict:
        command = _command_of(call)
        details: dict[str, Any] = {"pattern": pattern.name, "match": match.group(0)[:300], "command": command,
                                   "tool": call.name, "output_tail": _tail(call.content), "advice": pattern.advice,
                                   "recovery": pattern.recovery, "can_auto_resume": bool(pattern.recovery)}
        if pattern.name in ("address_in_use", "service_refused"):
            details["port"] = _port(match, call.content, command)
        if pattern.name == "missing_module":
            details["module"] = _module(match)
        return Verdict("pause", "critical_error", f"{pattern.name.replace('_', ' ')}: {match.group(0)[:200]} "
                       f"({pattern.advice})", details)

    def _provider(self, state: LoopState) -> Verdict | None:
        error = state.provider_error
        if error is None or error.code not in CRITICAL_PROVIDER_CODES:
            return None
        return Verdict("pause", "critical_error", f"provider: {CRITICAL_PROVIDER_CODES[error.code]} ({error.message})",
                       {"pattern": "provider_auth", "code": error.code, "status": error.details.get("status"),
                        "advice": "check ANTHROPIC_API_KEY and the account's access", "recovery": "",
                        "can_auto_resume": False})


# ------------------------------------------------------------------------------------------------ provider holds


class ProviderGuard:
    """Holds every session on a provider account while it is rate-limited, overloaded or failing (circuit open).

    Before each call it pauses the session if the account is on hold; when a call fails with a rate limit or
    overload it puts the account on hold until the provider's reset time; consecutive server failures open the
    circuit for `CIRCUIT_COOLDOWN`. Held pauses resume by themselves when the hold ends. Its `hook` clears the
    failure count after each successful turn.
    """

    HOLD_CODES = {"rate_limited": "rate_limit", "overloaded": "overloaded"}
    FAILURE_CODES = {"provider_server_error", "provider_unreachable", "provider_timeout"}

    def __init__(self, account: str) -> None:
        self.account = account

    def __call__(self, phase: str, state: LoopState) -> Verdict | None:
        if phase == "before_call":
            held = holds.hold_active(account=self.account)
            return self._held(held.hold_kind, held.hold_reason, held.hold_until) if held else None
        error = state.provider_error
        if phase != "provider_error" or error is None:
            return None
        if error.code in self.HOLD_CODES:
            held = holds.hold_open(account=self.account, kind=self.HOLD_CODES[error.code], reason=error.message,
                                   until=holds.reset_time(error.details))
            return self._held(held.hold_kind, held.hold_reason, held.hold_until)
        if error.code in self.FAILURE_CODES:
            held = holds.failure_record(account=self.account, error=error.message)
            if held is not None:
                return self._held(held.hold_kind, held.hold_reason, held.hold_until)
        return None

    def _held(self, kind: str, reason: str, until: Any) -> Verdict:
        pause_type = "circuit_open" if kind == "circuit_open" else "rate_limit"
        return Verdict("pause", pause_type, f"provider account on hold until {until:%H:%M:%S} ({kind}): {reason}",
                       {"account": self.account, "hold_kind": kind, "hold_until": until.isoformat(),
                        "can_auto_resume": True})

    def hook(self, event: str, state: LoopState) -> None:
        if event == "turn":
            holds.failures_clear(account=self.account)


class BudgetGuard:
    """Before every call: the project's spend so far plus this call's worst case must fit the budget. The budget
    is read afresh each time, so an approval made while other sessions run counts at once."""

    def __init__(self, project_id: int) -> None:
        self.project_id = project_id

    def __call__(self, phase: str, state: LoopState) -> Verdict | None:
        if phase != "before_call" or state.request is None:
            return None
        budget = Project.objects.filter(pk=self.project_id).values_list("budget_usd", flat=True).first()
        if budget is None:
            return None
        price = price_for(state.request.model, timezone.localdate())
        previous = state.last_reply.usage if state.last_reply else None
        worst = call_worst_case(price, state.request, previous) if price else Decimal(0)
        spent = project_spent(project=Project(pk=self.project_id))
        if spent + worst <= budget:
            return None
        suggested = approval_for(spent + worst - budget)
        return Verdict("pause", "budget", f"the next call could cost up to ${worst:.4f}; ${spent:.4f} of the "
                       f"${budget:.2f} budget is spent. Approve more budget to go on (suggested +${suggested}).",
                       {"budget_usd": str(budget), "spent_usd": str(spent), "next_call_worst_usd": str(worst),
                        "suggested_usd": str(suggested)})


class TimeLimit:
    """Before every call: this run of the session (a start or a continuation) has taken longer than the project's
    `session_time_limit`. Resuming starts the clock again."""

    def __init__(self, project_id: int) -> None:
        minutes = Project.objects.filter(pk=project_id).values_list("session_time_limit", flat=True).first()
        self.minutes = minutes or 0
        self.started = time.monotonic()

    def __call__(self, phase: str, state: LoopState) -> Verdict | None:
        if phase != "before_call" or not self.minutes:
            return None
        elapsed = time.monotonic() - self.started
        if elapsed < self.minutes * 60:
            return None
        return Verdict("pause", "timeout", f"the session ran {elapsed / 60:.0f} min, over the project's limit of "
                       f"{self.minutes} min; resume to give it another {self.minutes} min",
                       {"limit_minutes": self.minutes, "elapsed_seconds": round(elapsed)})


def manual_pause(phase: str, state: LoopState) -> Verdict | None:
    """Before every call: a person asked this session to pause (page, API, command). The request is taken (cleared)
    as it turns into the pause, so continuing the session does not pause it again."""
    if phase != "before_call":
        return None
    rows = AgentSession.objects.filter(pk=state.session.pk).exclude(pause_requested="")
    requested = rows.values_list("pause_requested", flat=True).first()
    if not requested or not rows.update(pause_requested=""):
        return None
    by, _, why = requested.partition(": ")
    return Verdict("pause", "manual", f"paused by {by}" + (f": {why}" if why else ""), {"requested_by": by})


def guards_for(*, account: str, project_id: int | None = None) -> tuple[list, list]:
    """The guards and hooks of one coding session run: (guards, hooks) for `session_run`."""
    provider_guard = ProviderGuard(account)
    guards: list = [manual_pause, provider_guard, CriticalErrors(), RetryTracker()]
    if project_id is not None:
        guards.insert(0, BudgetGuard(project_id))
        guards.append(TimeLimit(project_id))
    return guards, [provider_guard.hook]
