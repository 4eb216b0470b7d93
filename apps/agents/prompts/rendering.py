"""Prompt templates (Django template language, no autoescaping) and the system blocks built from them.

System blocks are ordered from the most stable to the least, because the provider caches the prefix: the role
and rules (same for every session), the spec (same for the project), then the domain's expertise.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from django.template import Context, Engine

PROMPTS_DIR = Path(__file__).resolve().parent
SPEC_EXCERPT_CHARS = 24_000


@cache
def _engine() -> Engine:
    return Engine(dirs=[str(PROMPTS_DIR)], autoescape=False)


def render(name: str, **context: object) -> str:
    # The Context decides escaping, not the Engine: without autoescape=False here, quotes in a test command would
    # reach the model as &#x27; and &lt; (the engine setting alone does not apply to a Context built by hand).
    return _engine().get_template(name).render(Context(context, autoescape=False)).strip() + "\n"


def spec_excerpt(spec: str) -> str:
    spec = spec.strip()
    if len(spec) <= SPEC_EXCERPT_CHARS:
        return spec
    return spec[:SPEC_EXCERPT_CHARS] + f"\n[… the spec continues for {len(spec) - SPEC_EXCERPT_CHARS} characters]"


def system_blocks(role_template: str, *, spec: str, expertise: str = "", **context: object) -> list[dict]:
    blocks = [render(role_template, **context), render("spec.md", spec=spec_excerpt(spec) or "(no spec given)")]
    if expertise.strip():
        blocks.append(render("expertise.md", expertise=expertise.strip()))
    return [{"type": "text", "text": text} for text in blocks]
