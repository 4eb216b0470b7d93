"""Which provider plays the model for a session: Claude when a key is configured, else the offline replay model."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from apps.agents.providers.anthropic import AnthropicProvider
from apps.agents.providers.base import REPLAY_LABEL, Provider, account_fingerprint
from apps.agents.providers.replay import ReplayProvider
from apps.core.errors import ProviderError


def provider_name() -> str:
    """`anthropic` when a key is configured (or LLM_PROVIDER=anthropic), else the offline `replay` model."""
    if settings.LLM_PROVIDER == "replay":
        return "replay"
    if settings.LLM_PROVIDER == "anthropic" or settings.ANTHROPIC_API_KEY:
        return "anthropic"
    return "replay"


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
        return AnthropicProvider()
    return ReplayProvider(replay_script_path(project_slug, script))


def deprecated_models() -> dict[str, str]:
    """Configured models that the installed SDK marks deprecated, with the retirement date it gives."""
    from anthropic._data import DEPRECATED_MODELS  # the SDK's own table; private path, so read defensively

    configured = set(settings.MODEL_TIERS.values())
    return {model: DEPRECATED_MODELS[model] for model in sorted(configured) if model in DEPRECATED_MODELS}
