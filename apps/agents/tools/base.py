"""Tool plumbing: a name, a description, a pydantic input model and a function.

A tool returns text for the model. Anything the model did wrong (a bad path, a refused command, a string that is
not in the file) is a `YokeFlowError`, sent back as an `is_error` tool result so the model can correct itself;
it never ends the session. Tools report outcomes (task done, help wanted, a plan) through `ToolContext.state`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic

from apps.core.errors import YokeFlowError

MAX_RESULT_CHARS = 30_000


@dataclass
class ToolContext:
    session: Any  # AgentSession; typed loosely so tools stay importable without the ORM in pure tests
    workdir: Path
    task: Any = None
    home: Path | None = None
    command_timeout: float = 120.0
    env: dict[str, str] = field(default_factory=dict)
    network: str = "none"  # the jail's network mode for this session's commands (the project's setting)
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    input_model: type[pydantic.BaseModel]
    run: Callable[[ToolContext, Any], str | ToolResult]  # text, or a result that says it is an error
    input_schema: dict | None = None  # what the model is shown, when it differs from the permissive input model

    def schema(self) -> dict:
        schema = dict(self.input_schema or self.input_model.model_json_schema())
        schema.pop("title", None)
        return {"name": self.name, "description": self.description, "input_schema": schema}


@dataclass(frozen=True)
class ToolResult:
    content: str
    is_error: bool = False

    def block(self, tool_use_id: str) -> dict:
        return {"type": "tool_result", "tool_use_id": tool_use_id, "content": self.content, "is_error": self.is_error}


class Input(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")


def _truncate(text: str) -> str:
    text = text.replace("\x00", "\ufffd")  # NUL survives neither PostgreSQL nor most terminals
    if len(text) <= MAX_RESULT_CHARS:
        return text
    half = MAX_RESULT_CHARS // 2
    return f"{text[:half]}\n[… {len(text) - MAX_RESULT_CHARS} characters cut …]\n{text[-half:]}"


def _input_problems(exc: pydantic.ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'input'}: {err['msg']}" for err in exc.errors())


def tool_execute(tools: dict[str, Tool], context: ToolContext, name: str, arguments: Any) -> ToolResult:
    tool = tools.get(name)
    if tool is None:
        return ToolResult(f"unknown tool {name!r}; the tools are: {', '.join(sorted(tools))}", is_error=True)
    try:
        parsed = tool.input_model.model_validate(arguments if isinstance(arguments, dict) else {})
    except pydantic.ValidationError as exc:
        return ToolResult(f"invalid input for {name}: {_input_problems(exc)}", is_error=True)
    try:
        result = tool.run(context, parsed)
        if isinstance(result, ToolResult):
            return ToolResult(_truncate(result.content), is_error=result.is_error)
        return ToolResult(_truncate(result))
    except YokeFlowError as exc:
        return ToolResult(exc.message, is_error=True)
    except (OSError, UnicodeError) as exc:
        return ToolResult(f"{name} failed: {exc}", is_error=True)
