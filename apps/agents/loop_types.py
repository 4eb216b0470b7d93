"""What the agent loop and the code around it exchange: the brief, the configuration, the state guards and hooks
see, their verdicts and the outcome. Kept apart from `loop.py` so detectors, orchestration and tests can name them
without the loop's machinery."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from django.conf import settings

from apps.agents.models import AgentSession, SessionStatus
from apps.agents.providers import ModelReply, ModelRequest
from apps.agents.tools import Tool, ToolContext
from apps.core.errors import ProviderError

Status = SessionStatus

__all__ = ["Brief", "GiveUp", "Guard", "Hook", "LoopConfig", "LoopState", "Outcome", "ToolCall", "Verdict"]


@dataclass(frozen=True)
class Verdict:
    action: Literal["pause", "fail"]
    kind: str  # e.g. retry_limit, critical_error, rate_limit, circuit_open
    reason: str
    details: dict[str, Any] = field(default_factory=dict)  # what the guard found (the pause's blocker info)


@dataclass
class Brief:
    """What the session is asked: the system blocks, the opening message, the tools and when it is done."""

    system: list[dict]
    opening: str
    tools: dict[str, Tool]
    finished: Callable[[ToolContext], str | None]  # None when done, else the message that re-asks
    max_reasks: int = 2


@dataclass
class LoopConfig:
    max_turns: int = field(default_factory=lambda: settings.AGENT_MAX_TURNS)
    max_tokens: int = field(default_factory=lambda: settings.AGENT_MAX_TOKENS)


@dataclass
class ToolCall:
    name: str
    input: Any
    content: str
    is_error: bool


@dataclass
class LoopState:
    session: AgentSession
    context: ToolContext
    messages: list[dict]
    turn: int = 0
    reasks: int = 0
    last_reply: ModelReply | None = None
    last_calls: list[ToolCall] = field(default_factory=list)
    provider_error: ProviderError | None = None  # set while the "provider_error" guards look at it
    request: ModelRequest | None = None  # the call about to be made, for the "before_call" guards (e.g. budget)


@dataclass
class Outcome:
    status: str
    reason: str
    message: str = ""
    state: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)  # a guard's findings when it stopped the session

    @property
    def completed(self) -> bool:
        return self.status == Status.COMPLETED


Guard = Callable[[str, LoopState], Verdict | None]
Hook = Callable[[str, LoopState], None]


class GiveUp(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message
