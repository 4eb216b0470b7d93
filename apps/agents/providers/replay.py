"""The offline replay model: plays scripted assistant turns from a JSON file.

    {"description": "…", "turns": [{"content": [{"type": "thinking", "thinking": "…"},
                                                {"type": "tool_use", "name": "write_file", "input": {…}}],
                                    "usage": {"input_tokens": 1200, "output_tokens": 300}}]}

The turn played is the number of assistant messages already in the conversation, so a session resumed from a
checkpoint, or one that was re-asked, goes on with the next scripted turn. The tool calls are real: the loop
executes them like Claude's. Usage comes from the script; costs are recorded as simulated (nothing is charged).
A turn's optional `delay_seconds` makes the answer take that long (simulated durations for benchmarks).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Literal

import pydantic
from django.conf import settings

from apps.agents.pricing import TokenUsage
from apps.agents.providers.base import REPLAY_LABEL, ModelReply, ModelRequest
from apps.core.errors import ProviderError


class ReplayTurn(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    content: list[dict] = pydantic.Field(min_length=1)
    usage: dict[str, int | dict[str, int]] = pydantic.Field(default_factory=dict)
    stop_reason: Literal["end_turn", "tool_use", "max_tokens", "refusal"] | None = None
    # Seconds the "model" takes to answer: simulated agent durations for benchmarks and concurrency tests.
    delay_seconds: float = pydantic.Field(default=0.0, ge=0, le=3600)


class ReplayScript(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    description: str = ""
    turns: list[ReplayTurn] = pydantic.Field(min_length=1)


def load_script(path: Path) -> ReplayScript:
    if not path.is_file():
        raise ProviderError(
            f"{REPLAY_LABEL}: no script at {path}; set ANTHROPIC_API_KEY to use Claude, or add the script",
            code="replay_script_missing", recoverable=False,
        )
    try:
        return ReplayScript.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, pydantic.ValidationError) as exc:
        raise ProviderError(f"{REPLAY_LABEL}: {path} is not a valid script: {exc}", code="replay_script_invalid",
                            recoverable=False) from None


def _normalise(turn: ReplayTurn, index: int) -> list[dict]:
    """Give tool calls stable ids and thinking blocks a signature, as the real API does."""
    content = []
    for position, block in enumerate(turn.content):
        block = dict(block)
        if block.get("type") == "tool_use":
            block.setdefault("id", f"toolu_replay_{index}_{position}")
            block.setdefault("input", {})
        elif block.get("type") == "thinking":
            block.setdefault("signature", f"replay-{index}-{position}")
        content.append(block)
    return content


class ReplayProvider:
    name = "replay"
    simulated = True
    account = "replay"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._script: ReplayScript | None = None

    @property
    def script(self) -> ReplayScript:
        if self._script is None:
            self._script = load_script(self.path)
        return self._script

    def complete(self, request: ModelRequest) -> ModelReply:
        index = sum(1 for message in request.messages if message["role"] == "assistant")
        turns = self.script.turns
        if index >= len(turns):
            raise ProviderError(
                f"{REPLAY_LABEL}: {self.path.name} has {len(turns)} turns and the session asked for turn {index + 1}",
                code="replay_exhausted", recoverable=False,
            )
        turn = turns[index]
        delay = turn.delay_seconds or settings.REPLAY_TURN_SECONDS
        if delay > 0:
            time.sleep(delay)
        content = _normalise(turn, index)
        has_tools = any(block.get("type") == "tool_use" for block in content)
        return ModelReply(
            content=content,
            stop_reason=turn.stop_reason or ("tool_use" if has_tools else "end_turn"),
            usage=TokenUsage.from_dict(turn.usage),
            model=request.model,
        )
