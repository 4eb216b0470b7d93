"""Fixtures for agent tests: the fake Messages API server wired into settings, a task with a real repository."""

from __future__ import annotations

import pytest

from apps.agents.models import AgentSession
from apps.agents.services import session_create
from apps.orchestration.repository import repo_ensure
from apps.projects.models import AcceptanceTest
from apps.projects.services import task_transition, tasks_refresh_ready
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
