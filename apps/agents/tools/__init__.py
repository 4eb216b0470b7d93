"""The agent's tools: files confined to the worktree, the sandboxed shell, and the task tools.

See `base.py` for how a tool is declared and how its errors reach the model.
"""

from __future__ import annotations

from collections.abc import Iterable

from apps.agents.tools.base import Tool, ToolContext, ToolResult, tool_execute
from apps.agents.tools.files import FILE_TOOLS
from apps.agents.tools.shell import SHELL_TOOLS
from apps.agents.tools.tasks import TASK_TOOLS

__all__ = ["Tool", "ToolContext", "ToolResult", "coding_tools", "tool_execute", "toolbox"]


def toolbox(*groups: Iterable[Tool]) -> dict[str, Tool]:
    return {tool.name: tool for group in groups for tool in group}


def coding_tools() -> dict[str, Tool]:
    return toolbox(FILE_TOOLS, SHELL_TOOLS, TASK_TOOLS)
