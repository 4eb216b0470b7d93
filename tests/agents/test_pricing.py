"""Prices from the seeded table, long-prompt tiers, cache rates, and price changes that never rewrite history."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from apps.agents.models import ModelPrice
from apps.agents.pricing import TokenUsage, cost_of, price_for
from apps.agents.services import call_record

pytestmark = pytest.mark.django_db
MILLION = 1_000_000


def test_the_seeded_rates_are_todays_official_ones():
    opus = price_for("claude-opus-5-5", date(2026, 11, 21))
    assert (opus.input_per_mtok, opus.output_per_mtok) == (Decimal(4), Decimal(20))
    assert (opus.cache_write_5m_per_mtok, opus.cache_write_1h_per_mtok, opus.cache_read_per_mtok) == (
        Decimal(5), Decimal(8), Decimal("0.2"))
    haiku = price_for("claude-haiku-5-5", date(2026, 11, 21))
    assert (haiku.input_per_mtok, haiku.output_per_mtok, haiku.long_prompt_threshold) == (
        Decimal("0.1"), Decimal("0.5"), 100_000)
    for legacy, rates in {"claude-opus-5": (5, 25), "claude-sonnet-5": (2, 10), "claude-haiku-4-5": (1, 5)}.items():
        row = price_for(legacy, date(2026, 11, 21))
        assert row.legacy and (row.input_per_mtok, row.output_per_mtok) == tuple(map(Decimal, rates))


def test_sonnet_cache_reads_cost_less_from_october_7():
    assert price_for("claude-sonnet-5-5", date(2026, 10, 6)).cache_read_per_mtok == Decimal("0.2")
    assert price_for("claude-sonnet-5-5", date(2026, 10, 7)).cache_read_per_mtok == Decimal("0.1")


def test_each_kind_of_token_is_priced_at_its_own_rate():
    sonnet = price_for("claude-sonnet-5-5", date(2026, 11, 21))
    usage = TokenUsage(input_tokens=MILLION, output_tokens=MILLION, cache_read_tokens=MILLION,
                       cache_write_tokens=2 * MILLION, cache_write_1h_tokens=MILLION)
    assert cost_of(sonnet, usage) == Decimal("2") + Decimal("10") + Decimal("0.1") + Decimal("2.5") + Decimal("4")


def test_a_haiku_prompt_over_100k_tokens_bills_every_token_at_the_long_rates():
    haiku = price_for("claude-haiku-5-5", date(2026, 11, 21))
    at_limit = TokenUsage(input_tokens=90_000, cache_read_tokens=10_000, output_tokens=MILLION)
    over = TokenUsage(input_tokens=95_000, cache_read_tokens=10_000, output_tokens=MILLION)
    assert cost_of(haiku, at_limit) == Decimal("0.009") + Decimal("0.0001") + Decimal("0.5")
    assert cost_of(haiku, over) == Decimal("0.0475") + Decimal("0.0005") + Decimal("2.5")


def test_a_new_price_never_rewrites_the_cost_of_earlier_calls(coding_session):
    usage = TokenUsage(input_tokens=MILLION)
    before = call_record(session=coding_session, turn=1, model="claude-sonnet-5-5", usage=usage, latency_ms=5,
                         simulated=False)
    ModelPrice.objects.create(model="claude-sonnet-5-5", tier="sonnet", effective_from=date(2026, 11, 1),
                              input_per_mtok=3, output_per_mtok=15, cache_write_5m_per_mtok=3,
                              cache_write_1h_per_mtok=6, cache_read_per_mtok="0.3")
    after = call_record(session=coding_session, turn=2, model="claude-sonnet-5-5", usage=usage, latency_ms=5,
                        simulated=False)
    before.refresh_from_db()
    coding_session.refresh_from_db()
    assert (before.cost_usd, after.cost_usd) == (Decimal(2), Decimal(3))
    assert coding_session.cost_usd == Decimal(5) and coding_session.input_tokens == 2 * MILLION


def test_an_unknown_model_is_recorded_with_its_tokens_and_no_price(coding_session):
    row = call_record(session=coding_session, turn=1, model="claude-future-9", usage=TokenUsage(input_tokens=10),
                      latency_ms=1, simulated=False)
    assert row.price is None and row.cost_usd == 0 and row.input_tokens == 10
