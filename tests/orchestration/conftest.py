"""Fixtures for runs: the agent fixtures, and projects whose plan and replay agents are generated."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from apps.projects.plan import plan_import
from apps.projects.services import project_create
from tests.agents.conftest import claude, coding_session, fake, task  # noqa: F401 - shared fixtures


def replay_script(path: str, content: str, *, delay: float = 0.0) -> dict:
    """An agent that writes one file (taking `delay` seconds to "think" first) and reports the task done."""
    return {"description": f"writes {path}", "turns": [
        {"content": [{"type": "tool_use", "name": "write_file", "input": {"path": path, "content": content}}],
         "delay_seconds": delay},
        {"content": [{"type": "tool_use", "name": "update_task_status",
                      "input": {"status": "done", "evidence": f"wrote {path}"}}]},
        {"content": [{"type": "text", "text": "Done."}]},
    ]}


@pytest.fixture
def replay_project(settings, owner, tmp_path) -> Callable[..., object]:
    """Make a project whose plan is `epics` = {epic key: [(task key, [hard deps], file, content), …]}; every task's
    replay agent writes its file, and its acceptance test checks that file's content."""
    root = tmp_path / "replay"
    settings.REPLAY_ROOT = root
    settings.LLM_PROVIDER = "replay"
    settings.ANTHROPIC_API_KEY = None

    def make(slug: str, epics: dict[str, list[tuple[str, list[str], str, str]]], *, delay: float = 0.0,
             **options: object):
        project = project_create(owner=owner, name=slug, slug=slug, **options)
        plan = {"epics": [{"key": epic, "title": f"Epic {epic}", "tasks": [
            {"key": key, "title": f"Write {path}", "depends_on": deps, "description": f"write {path}",
             "tests": [{"description": f"{path} holds {content!r}", "command": f"grep -qx '{content}' {path}"}]}
            for key, deps, path, content in tasks]} for epic, tasks in epics.items()]}
        plan_import(project=project, data=plan, replace=False, apply_suggestions=False)
        scripts = Path(root) / slug / "replay"
        scripts.mkdir(parents=True, exist_ok=True)
        for tasks in epics.values():
            for key, _deps, path, content in tasks:
                (scripts / f"{key}.json").write_text(json.dumps(replay_script(path, content, delay=delay)))
        return project

    return make
