"""Who plays the model: Claude through the official SDK, or the offline replay model.

Both take a `ModelRequest` and give back a `ModelReply` whose content blocks are plain dicts in the Messages
API's shape, so the loop stores them in checkpoints and sends them back unchanged (thinking blocks included).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from django.conf import settings

from apps.agents.pricing import TokenUsage
from apps.core.errors import ProviderError

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


def provider_name() -> str:
    """`anthropic` when a key is configured (or LLM_PROVIDER=anthropic), else the offline `replay` model."""
    if settings.LLM_PROVIDER == "replay":
        return "replay"
    if settings.LLM_PROVIDER == "anthropic" or settings.ANTHROPIC_API_KEY:
        return "anthropic"
    return "replay"


def account_fingerprint(api_key: str | None, base_url: str | None) -> str:
    """A stable, non-reversible name for an API key at an endpoint (rate limits and holds are per account)."""
    digest = hashlib.sha256(f"{base_url or 'https://api.anthropic.com'}\n{api_key or ''}".encode()).hexdigest()
    return f"anthropic-{digest[:16]}"


def provider_account() -> str:
    """The account new sessions would use now (the scheduler starts no task while it is on hold)."""
    if provider_name() == "replay":
        return "replay"
    return account_fingerprint(settings.ANTHROPIC_API_KEY, settings.ANTHROPIC_BASE_URL)


def provider_notice() -> str:
    """One line for the CLI and pages: which model plays, and why."""
    if provider_name() == "anthropic":
        return "model: Claude through the Anthropic API"
    why = "LLM_PROVIDER=replay" if settings.LLM_PROVIDER == "replay" else "no ANTHROPIC_API_KEY is set"
    return f"model: {REPLAY_LABEL} ({why}); scripted turns from {settings.REPLAY_ROOT}, nothing is charged"


def model_for_tier(tier: str | None = None) -> str:
    tier = tier or settings.DEFAULT_MODEL_TIER
    try:
        return settings.MODEL_TIERS[tier]
    except KeyError:
        raise ProviderError(f"unknown model tier {tier!r}; use one of {', '.join(settings.MODEL_TIERS)}",
                            code="unknown_tier", recoverable=False) from None


def replay_script_path(project_slug: str, script: str) -> Path:
    return Path(settings.REPLAY_ROOT) / project_slug / "replay" / f"{script}.json"


def provider_for(*, project_slug: str, script: str) -> Provider:
    """The provider for one session; `script` names the replay file (`planning` or the task key)."""
    if provider_name() == "anthropic":
        from apps.agents.providers.anthropic import AnthropicProvider

        return AnthropicProvider()
    from apps.agents.providers.replay import ReplayProvider

    return ReplayProvider(replay_script_path(project_slug, script))


def deprecated_models() -> dict[str, str]:
    """Configured models that the installed SDK marks deprecated, with the retirement date it gives."""
    from anthropic._data import DEPRECATED_MODELS  # the SDK's own table; private path, so read defensively

    configured = set(settings.MODEL_TIERS.values())
    return {model: DEPRECATED_MODELS[model] for model in sorted(configured) if model in DEPRECATED_MODELS}
