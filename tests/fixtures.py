"""Fixtures shared across the test packages (a pytest plugin, loaded by tests/conftest.py): the fake Messages API
server and the real SDK pointed at it, a claimed task with a real repository and its coding session, projects
whose replay agents are generated, and a paused session opened through the real service."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from apps.agents.models import AgentSession
from apps.agents.services import session_create, session_transition
from apps.interventions.models import PausedSession
from apps.interventions.services import pause_open
from apps.orchestration.repository import repo_ensure
from apps.projects.models import AcceptanceTest
from apps.projects.plan import plan_import
from apps.projects.services import project_create, task_transition, tasks_refresh_ready
from tests.fake_anthropic import FakeAnthropic


@pytest.fixture
def fake():
    with FakeAnthropic() as server:
        yield server


@pytest.fixture
def claude(settings, fake):
    """Route every provider call through the real SDK to the local fake server."""
    settings.ANTHROPIC_API_KEY = "test-key"
    settings.ANTHROPIC_BASE_URL = fake.base_url
    settings.ANTHROPIC_MAX_RETRIES = 2
    settings.ANTHROPIC_TIMEOUT = 10
    settings.LLM_PROVIDER = "auto"
    return fake


@pytest.fixture
def task(planned_project):
    """T1 of the example plan, claimed (running), with a repository and one acceptance test that can pass."""
    repo_ensure(planned_project)
    tasks_refresh_ready(project=planned_project)
    task = planned_project.tasks.get(key="T1")
    task.tests.all().delete()
    AcceptanceTest.objects.create(task=task, description="hello.txt exists", command="test -f hello.txt")
    return task_transition(task=task, to="running")


@pytest.fixture
def coding_session(task) -> AgentSession:
    return session_create(project=task.project, task=task, kind="coding", model="claude-sonnet-5-5",
                          provider="anthropic", workdir=task.project.repo_path)


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


@pytest.fixture
def pause(coding_session) -> PausedSession:
    """A coding session paused by the retry detector (the session row is paused too, as in a real run)."""
    session = session_transition(session=coding_session, status=AgentSession.Status.RUNNING, lease_owner="test")
    session = session_transition(session=session, status=AgentSession.Status.PAUSED, stop_reason="retry_limit",
                                 error="`pytest -q` failed 2 times the same way", owner="test")
    return pause_open(session=session, pause_type="retry_limit", reason="`pytest -q` failed 2 times the same way",
                      blocker_info={"command": "pytest -q", "output_tail": "E   AssertionError: 1 != 2"},
                      retry_stats={"pytest -q": {"count": 2, "command": "pytest -q", "last_error": "exit code 1"}})
