"""The shell tool: one command in the sandbox (worktree cwd, own process group, limits, scrubbed environment)."""

from __future__ import annotations

import pydantic

from apps.agents.sandbox import run_command as sandbox_run
from apps.agents.sandbox import scrubbed_env
from apps.agents.tools.base import Input, Tool, ToolContext

MAX_COMMAND_TIMEOUT = 1800


class CommandInput(Input):
    command: str = pydantic.Field(min_length=1, description="A bash command, run from the worktree root.")
    timeout_seconds: int | None = pydantic.Field(
        None, ge=1, le=MAX_COMMAND_TIMEOUT, description="Defaults to the project's command timeout."
    )


def command_env(context: ToolContext) -> dict[str, str]:
    home = context.home or context.workdir
    return scrubbed_env(context.env, home=str(home))


def run_command(context: ToolContext, args: CommandInput) -> str:
    if context.home:
        context.home.mkdir(parents=True, exist_ok=True)
    result = sandbox_run(
        args.command, cwd=context.workdir, timeout=float(args.timeout_seconds or context.command_timeout),
        env=command_env(context), owner=getattr(context.session, "pk", None),
    )
    return result.as_text()


SHELL_TOOLS = (
    Tool("run_command", "Run a bash command in the worktree (timeout, resource limits, no secrets in the "
         "environment; sudo, leaving the worktree and piping downloads into a shell are refused).",
         CommandInput, run_command),
)
