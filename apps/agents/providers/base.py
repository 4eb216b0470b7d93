"""What every model provider shares: the request and reply shapes, the protocol and the account fingerprint.

Both take a `ModelRequest` and give back a `ModelReply` whose content blocks are plain dicts in the Messages
API's shape, so the loop stores them in checkpoints and sends them back unchanged (thinking blocks included).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Protocol

from apps.agents.pricing import TokenUsage

REPLAY_LABEL = "offline replay model"


@dataclass
class ModelRequest:
    model: str
    system: list[dict]
    messages: list[dict]
    tools: list[dict] = field(default_factory=list)
    max_tokens: int = 8192


@dataclass
class ModelReply:
    content: list[dict]
    stop_reason: str
    usage: TokenUsage
    model: str
    latency_ms: int = 0
    request_id: str = ""

    @property
    def tool_uses(self) -> list[dict]:
        return [block for block in self.content if block.get("type") == "tool_use"]


class Provider(Protocol):
    name: str
    simulated: bool
    account: str  # which account the calls count against (a fingerprint, never the key): holds apply per account

    def complete(self, request: ModelRequest) -> ModelReply: ...


def account_fingerprint(api_key: str | None, base_url: str | None) -> str:
    """A stable, non-reversible name for an API key at an endpoint (rate limits and holds are per account)."""
    digest = hashlib.sha256(f"{base_url or 'https://api.anthropic.com'}\n{api_key or ''}".encode()).hexdigest()
    return f"anthropic-{digest[:16]}"
