"""Tool sets: a session's tools by name."""

from __future__ import annotations

from collections.abc import Iterable

from apps.agents.tools.base import Tool
from apps.agents.tools.files import FILE_TOOLS
from apps.agents.tools.shell import SHELL_TOOLS
from apps.agents.tools.tasks import TASK_TOOLS


def toolbox(*groups: Iterable[Tool]) -> dict[str, Tool]:
    return {tool.name: tool for group in groups for tool in group}


def coding_tools() -> dict[str, Tool]:
    return toolbox(FILE_TOOLS, SHELL_TOOLS, TASK_TOOLS)
