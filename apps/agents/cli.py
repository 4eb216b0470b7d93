"""`yokeflow models`: which provider plays the model, the tier models, deprecations and prices."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from apps.agents.models import ModelPrice
from apps.agents.providers import deprecated_models, provider_notice


def register(subparsers: Any) -> None:
    models = subparsers.add_parser("models", help="show the model provider, tier models, deprecations and prices")
    models.set_defaults(handler=_models)


def _models(options: dict[str, Any], out: Any) -> None:
    out.write(provider_notice())
    deprecated = deprecated_models()
    for tier, model in settings.MODEL_TIERS.items():
        default = " (default)" if tier == settings.DEFAULT_MODEL_TIER else ""
        warning = f"  WARNING: deprecated by Anthropic, retires {deprecated[model]}" if model in deprecated else ""
        out.write(f"  {tier:<7} {model}{default}{warning}")
    out.write("prices per million tokens (in / out / cache write 5m / 1h / cache read):")
    for price in ModelPrice.objects.order_by("model", "effective_from"):
        long = (f"; prompts over {price.long_prompt_threshold:,} tokens: ${price.long_input_per_mtok} / "
                f"${price.long_output_per_mtok}" if price.long_prompt_threshold else "")
        out.write(f"  {price.model:<20} from {price.effective_from}  ${price.input_per_mtok} / "
                  f"${price.output_per_mtok} / ${price.cache_write_5m_per_mtok} / ${price.cache_write_1h_per_mtok}"
                  f" / ${price.cache_read_per_mtok}{long}{'  (legacy)' if price.legacy else ''}")
