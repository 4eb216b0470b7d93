"""Claude through the official `anthropic` SDK.

The SDK does the retrying (exponential backoff honouring `retry-after` on 429, 529, 5xx and connection errors,
`ANTHROPIC_MAX_RETRIES` times); what is still failing afterwards is mapped onto `ProviderError` with a code the
loop and the intervention detectors understand. Prompt caching: one breakpoint on the last system block (tools
+ system prompt + spec + expertise: the stable prefix) and one on the newest user turn (the conversation grows by
appending, so each call reads the previous call's cache).
"""

from __future__ import annotations

import copy
import time

import anthropic
from django.conf import settings

from apps.agents.pricing import TokenUsage
from apps.agents.providers.base import ModelReply, ModelRequest, account_fingerprint
from apps.core.errors import ProviderError

CACHE = {"type": "ephemeral"}
# When each rate limit resets (RFC 3339); the latest one is when the account may call again.
RESET_HEADERS = ("anthropic-ratelimit-requests-reset", "anthropic-ratelimit-tokens-reset",
                 "anthropic-ratelimit-input-tokens-reset", "anthropic-ratelimit-output-tokens-reset")

# SDK exception → (our code, recoverable). Checked in order: subclasses before their bases.
_ERRORS: tuple[tuple[type[Exception], str, bool], ...] = (
    (anthropic.AuthenticationError, "provider_auth", False),
    (anthropic.PermissionDeniedError, "provider_permission", False),
    (anthropic.NotFoundError, "model_not_found", False),
    (anthropic.RateLimitError, "rate_limited", True),
    (anthropic.BadRequestError, "provider_bad_request", False),
    (anthropic.APITimeoutError, "provider_timeout", True),
    (anthropic.APIConnectionError, "provider_unreachable", True),
    (anthropic.InternalServerError, "provider_server_error", True),
    (anthropic.APIStatusError, "provider_error", False),
)


def _error_code(exc: Exception) -> tuple[str, bool]:
    if getattr(exc, "status_code", None) == 529:
        return "overloaded", True
    for cls, code, recoverable in _ERRORS:
        if isinstance(exc, cls):
            return code, recoverable
    return "provider_error", False


def provider_error(exc: anthropic.AnthropicError) -> ProviderError:
    code, recoverable = _error_code(exc)
    status = getattr(exc, "status_code", None)
    retry_after, resets = None, []
    response = getattr(exc, "response", None)
    if response is not None:
        retry_after = response.headers.get("retry-after")
        resets = [response.headers[name] for name in RESET_HEADERS if response.headers.get(name)]
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return ProviderError(
        f"Anthropic API: {message}" + (f" (HTTP {status})" if status else ""),
        code=code, recoverable=recoverable, details={"status": status, "retry_after": retry_after, "resets": resets},
    )


def with_cache_breakpoints(request: ModelRequest) -> tuple[list[dict], list[dict]]:
    """Copies of system and messages with `cache_control` set; the stored conversation is never touched."""
    system = copy.deepcopy(request.system)
    if system:
        system[-1]["cache_control"] = CACHE
    messages = copy.deepcopy(request.messages)
    for message in reversed(messages):
        if message["role"] == "user":
            content = message["content"]
            if isinstance(content, str):
                message["content"] = [{"type": "text", "text": content, "cache_control": CACHE}]
            elif content:
                content[-1]["cache_control"] = CACHE
            break
    return system, messages


def _block(block: object) -> dict:
    # exclude_none keeps the block exactly as the API sent it (no `citations: null` added on the way back).
    return block.model_dump(mode="json", exclude_none=True)  # type: ignore[attr-defined]


class AnthropicProvider:
    name = "anthropic"
    simulated = False

    def __init__(self, *, api_key: str | None = None, base_url: str | None = None) -> None:
        self.client = anthropic.Anthropic(
            api_key=api_key or settings.ANTHROPIC_API_KEY,
            base_url=base_url or settings.ANTHROPIC_BASE_URL,
            timeout=float(settings.ANTHROPIC_TIMEOUT),
            max_retries=settings.ANTHROPIC_MAX_RETRIES,
        )
        self.account = account_fingerprint(api_key or settings.ANTHROPIC_API_KEY,
                                           base_url or settings.ANTHROPIC_BASE_URL)

    def complete(self, request: ModelRequest) -> ModelReply:
        system, messages = with_cache_breakpoints(request)
        kwargs = {"model": request.model, "max_tokens": request.max_tokens, "system": system, "messages": messages}
        if request.tools:
            kwargs["tools"] = request.tools  # never `tool_choice`: forcing a tool is refused by current models
        started = time.monotonic()
        try:
            raw = self.client.messages.with_raw_response.create(**kwargs)
        except anthropic.AnthropicError as exc:
            raise provider_error(exc) from exc
        message = raw.parse()
        return ModelReply(
            content=[_block(block) for block in message.content],
            stop_reason=message.stop_reason or "end_turn",
            usage=TokenUsage.from_dict(message.usage.model_dump()),
            model=message.model,
            latency_ms=int((time.monotonic() - started) * 1000),
            request_id=raw.headers.get("request-id", ""),
        )
