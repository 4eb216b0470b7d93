"""End to end: a session fails a command and fixes it; its domain's expertise holds the failure and the fix, the
next session's prompt carries it, and the history shows the update."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apps.agents.models import AgentSession
from apps.learning.models import ExpertiseFile
from apps.orchestration import lifecycle, runs

pytestmark = pytest.mark.django_db


def _failing_then_fixed(path: str) -> dict:
    """Check for the file (fails), write it, check again (passes), report done."""
    check = {"command": f"test -f {path} || (echo 'FileNotFoundError: {path} is missing' >&2; exit 1)"}
    return {"description": "fails, then fixes", "turns": [
        {"content": [{"type": "tool_use", "name": "run_command", "input": check}]},
        {"content": [{"type": "tool_use", "name": "write_file", "input": {"path": path, "content": "A"}}]},
        {"content": [{"type": "tool_use", "name": "run_command", "input": check}]},
        {"content": [{"type": "tool_use", "name": "update_task_status", "input": {"status": "done",
                                                                                   "evidence": "ok"}}]},
        {"content": [{"type": "text", "text": "Done."}]},
    ]}


def test_a_fixed_failure_is_learned_and_reaches_the_next_sessions_prompt(replay_project, settings):
    project = replay_project("learns", {"E": [("A", [], "a.txt", "A"), ("B", ["A"], "b.txt", "B")]})
    script = Path(settings.REPLAY_ROOT) / "learns" / "replay" / "A.json"
    script.write_text(json.dumps(_failing_then_fixed("a.txt")))

    runs.jobs_drain(lambda: lifecycle.run_start(project=project))

    first, second = AgentSession.objects.filter(project=project).order_by("pk")
    assert (first.status, second.status) == ("completed", "completed")
    assert first.task_type == second.task_type == "general"
    file = ExpertiseFile.objects.get(project=project, domain="general")
    failure = file.content["failures"][0]
    assert "FileNotFoundError: a.txt is missing" in failure["error"]
    assert "a.txt" in failure["fix"] and "passed" in failure["fix"]
    # B's session started after A's learning: its system prompt carries the failure and its fix.
    system = second.events.get(type="system").payload["text"]
    assert "What earlier sessions learned in this domain" in system
    assert "FileNotFoundError: a.txt is missing" in system
    assert "FileNotFoundError" not in first.events.get(type="system").payload["text"]
    history = list(file.updates.order_by("version"))
    assert history[0].change_type == "learned" and history[0].session_id == first.pk
    assert "FileNotFoundError: a.txt is missing" in history[0].diff
    assert file.version == len([u for u in history if u.diff])
