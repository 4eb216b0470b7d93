"""The prompts: Django templates in this directory (`*.md`), rendered by `rendering.py`."""

from apps.agents.prompts.rendering import render, spec_excerpt, system_blocks

__all__ = ["render", "spec_excerpt", "system_blocks"]
