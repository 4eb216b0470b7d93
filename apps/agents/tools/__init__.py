"""The agent's tools: files confined to the worktree, the jailed shell, and the task tools.

See `base.py` for how a tool is declared and how its errors reach the model, `sets.py` for a session's tool set.
"""

from apps.agents.tools.base import Tool, ToolContext, ToolResult, tool_execute
from apps.agents.tools.sets import coding_tools, toolbox

__all__ = ["Tool", "ToolContext", "ToolResult", "coding_tools", "tool_execute", "toolbox"]
