"""The shell tool: one command in the jail (worktree cwd, the project's network mode, limits, scrubbed environment)."""

from __future__ import annotations

import pydantic

from apps.agents.sandbox import run_command as sandbox_run
from apps.agents.sandbox import scrubbed_env
from apps.agents.tools.base import Input, Tool, ToolContext, ToolResult

MAX_COMMAND_TIMEOUT = 1800


class CommandInput(Input):
    command: str = pydantic.Field(min_length=1, description="A bash command, run from the worktree root.")
    timeout_seconds: int | None = pydantic.Field(
        None, ge=1, le=MAX_COMMAND_TIMEOUT, description="Defaults to the project's command timeout."
    )


# Every process a session starts carries its id, so recovery stops only those. (Not "…_SESSION": names like that
# are treated as secrets and dropped from the environment.)
SESSION_MARKER = "YOKEFLOW_AGENT_RUN"


def command_env(context: ToolContext) -> dict[str, str]:
    home = context.home or context.workdir
    session_id = getattr(context.session, "pk", None)
    marker = {SESSION_MARKER: str(session_id)} if session_id is not None else {}
    return scrubbed_env({**context.env, **marker}, home=str(home))


def run_command(context: ToolContext, args: CommandInput) -> ToolResult:
    if context.home:
        context.home.mkdir(parents=True, exist_ok=True)
    result = sandbox_run(
        args.command, cwd=context.workdir, timeout=float(args.timeout_seconds or context.command_timeout),
        env=command_env(context), owner=getattr(context.session, "pk", None), network=context.network,
    )
    # A failing command is an error result: the model sees it as one, and the retry detector counts it.
    return ToolResult(result.as_text(), is_error=not result.ok)


SHELL_TOOLS = (
    Tool("run_command", "Run a bash command in the worktree, inside a jail: only the worktree and HOME are "
         "writable, git history is read-only (YokeFlow commits your work), no network unless the project allows "
         "package registries (through HTTP(S)_PROXY), a timeout and resource limits; every process the command "
         "starts ends with it.",
         CommandInput, run_command),
)
