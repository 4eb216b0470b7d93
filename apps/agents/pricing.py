"""Token usage and what it costs: the price row in force on a date, and the dollars of one call."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from apps.agents.models import ModelPrice

if TYPE_CHECKING:
    from apps.agents.providers import ModelRequest

MILLION = Decimal(1_000_000)
MICRO_DOLLAR = Decimal("0.000001")


@dataclass(frozen=True)
class TokenUsage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0  # all cache writes, 5-minute and 1-hour
    cache_write_1h_tokens: int = 0  # the part of cache_write_tokens written to the 1-hour cache

    @property
    def prompt_tokens(self) -> int:
        """Every input token of the request, cached or not: what the long-prompt tier is decided on."""
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens

    @classmethod
    def from_dict(cls, data: dict | None) -> TokenUsage:
        """Read the Messages API's usage shape (also what replay scripts carry)."""
        data = data or {}
        breakdown = data.get("cache_creation") or {}
        return cls(
            input_tokens=int(data.get("input_tokens") or 0),
            output_tokens=int(data.get("output_tokens") or 0),
            cache_read_tokens=int(data.get("cache_read_input_tokens") or 0),
            cache_write_tokens=int(data.get("cache_creation_input_tokens") or 0),
            cache_write_1h_tokens=int(breakdown.get("ephemeral_1h_input_tokens") or 0),
        )

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def price_for(model: str, on: date) -> ModelPrice | None:
    """The row in force on `on`; calls from before the recorded history use its earliest row."""
    rows = ModelPrice.objects.filter(model=model)
    return rows.filter(effective_from__lte=on).order_by("-effective_from").first() or (
        rows.order_by("effective_from").first()
    )


def _rates(price: ModelPrice, long: bool) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal]:
    if long:
        return (price.long_input_per_mtok, price.long_output_per_mtok, price.long_cache_write_5m_per_mtok,
                price.long_cache_write_1h_per_mtok, price.long_cache_read_per_mtok)
    return (price.input_per_mtok, price.output_per_mtok, price.cache_write_5m_per_mtok,
            price.cache_write_1h_per_mtok, price.cache_read_per_mtok)


def is_long_prompt(price: ModelPrice, usage: TokenUsage) -> bool:
    threshold = price.long_prompt_threshold
    return threshold is not None and usage.prompt_tokens > threshold


def cost_of(price: ModelPrice, usage: TokenUsage) -> Decimal:
    """Dollars for one call. A prompt over the long-prompt threshold bills *every* token at the long rates."""
    rate_in, rate_out, rate_w5, rate_w1h, rate_read = _rates(price, is_long_prompt(price, usage))
    write_5m = usage.cache_write_tokens - usage.cache_write_1h_tokens
    total = (
        usage.input_tokens * rate_in
        + usage.output_tokens * rate_out
        + write_5m * rate_w5
        + usage.cache_write_1h_tokens * rate_w1h
        + usage.cache_read_tokens * rate_read
    )
    return (total / MILLION).quantize(MICRO_DOLLAR, rounding=ROUND_HALF_UP)


# Code, JSON and prose run at about 3.5-4 characters a token; counting 3 over-estimates, as a worst case should.
CHARS_PER_TOKEN_WORST = 3


def _chars(value: object) -> int:
    return len(json.dumps(value, ensure_ascii=False, default=str))


def prompt_tokens_worst(request: ModelRequest, previous: TokenUsage | None = None) -> int:
    """An upper estimate of the request's prompt: from its size, and never below what the previous call's prompt
    and reply came to plus the newest message (the conversation only grows)."""
    estimate = math.ceil(_chars([request.system, request.tools, request.messages]) / CHARS_PER_TOKEN_WORST)
    if previous is not None and request.messages:
        grown = previous.prompt_tokens + previous.output_tokens + math.ceil(
            _chars(request.messages[-1]) / CHARS_PER_TOKEN_WORST)
        estimate = max(estimate, grown)
    return estimate


def call_worst_case(price: ModelPrice, request: ModelRequest, previous: TokenUsage | None = None) -> Decimal:
    """The most one call can cost: every prompt token at the dearer of the input and cache-write rates, and the
    full `max_tokens` of output, at the long-prompt rates when the prompt may cross the threshold."""
    prompt = prompt_tokens_worst(request, previous)
    threshold = price.long_prompt_threshold
    rate_in, rate_out, rate_w5, _, _ = _rates(price, threshold is not None and prompt > threshold)
    total = prompt * max(rate_in, rate_w5) + request.max_tokens * rate_out
    return (total / MILLION).quantize(MICRO_DOLLAR, rounding=ROUND_HALF_UP)
