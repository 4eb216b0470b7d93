"""Seed `ModelPrice` with the official per-million-token rates as of 2026-11-21.

Later price changes are new rows with a later `effective_from` (admin-editable); old `AgentCost` rows keep the
dollars computed when the call was made. The legacy models' cache rates were not published with their
in/out prices here, so they use the standard multipliers: 5-minute write 1.25×, 1-hour write 2×, read 0.1×.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django.db import migrations

D = Decimal
SEED_FROM = date(2026, 1, 1)  # the start of the recorded price history


def _row(model, tier, inp, out, w5, w1h, read, *, since=SEED_FROM, legacy=False, long=None):
    row = {"model": model, "tier": tier, "effective_from": since, "legacy": legacy,
           "input_per_mtok": D(inp), "output_per_mtok": D(out), "cache_write_5m_per_mtok": D(w5),
           "cache_write_1h_per_mtok": D(w1h), "cache_read_per_mtok": D(read)}
    if long:
        threshold, (l_in, l_out, l_w5, l_w1h, l_read) = long
        row |= {"long_prompt_threshold": threshold, "long_input_per_mtok": D(l_in), "long_output_per_mtok": D(l_out),
                "long_cache_write_5m_per_mtok": D(l_w5), "long_cache_write_1h_per_mtok": D(l_w1h),
                "long_cache_read_per_mtok": D(l_read)}
    return row


def _standard(model, tier, inp, out):
    inp, out = D(inp), D(out)
    return _row(model, tier, inp, out, inp * D("1.25"), inp * 2, inp * D("0.1"), legacy=True)


PRICES = [
    _row("claude-opus-5-5", "opus", "4", "20", "5", "8", "0.20"),
    _row("claude-sonnet-5-5", "sonnet", "2", "10", "2.50", "4", "0.20"),
    _row("claude-sonnet-5-5", "sonnet", "2", "10", "2.50", "4", "0.10", since=date(2026, 10, 7)),
    _row("claude-haiku-5-5", "haiku", "0.10", "0.50", "0.125", "0.20", "0.01",
         long=(100_000, ("0.50", "2.50", "0.625", "1.00", "0.05"))),
    _standard("claude-opus-5", "opus", "5", "25"),
    _standard("claude-sonnet-5", "sonnet", "2", "10"),
    _standard("claude-haiku-4-5", "haiku", "1", "5"),
]


def seed(apps, schema_editor):
    ModelPrice = apps.get_model("agents", "ModelPrice")
    for row in PRICES:
        ModelPrice.objects.update_or_create(
            model=row["model"], effective_from=row["effective_from"], defaults=row
        )


def unseed(apps, schema_editor):
    ModelPrice = apps.get_model("agents", "ModelPrice")
    for row in PRICES:
        ModelPrice.objects.filter(model=row["model"], effective_from=row["effective_from"]).delete()


class Migration(migrations.Migration):
    dependencies = [("agents", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
