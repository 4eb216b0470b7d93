"""A task that used up its attempts opens an intervention (not a silent pause): people are told, it is on the
page and the API with the last errors; resuming it gives the task fresh attempts and puts the person's notes
into the next attempt's prompt."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from apps.agents.coding import coding_brief
from apps.agents.models import AgentSession
from apps.agents.services import session_create, session_transition
from apps.core.jobs import jobs_drain
from apps.interventions.models import PausedSession
from apps.interventions.services import pause_resolve
from apps.orchestration.execution import task_failed
from apps.projects.services import task_transition

pytestmark = pytest.mark.django_db


def fail_attempts(task):
    """Every attempt: a session that ran and failed, then the task counted as failed."""
    for attempt in range(settings.TASK_MAX_ATTEMPTS):
        session = session_create(project=task.project, task=task, kind="coding", model="claude-sonnet-5-5",
                                 provider="anthropic", workdir=task.project.repo_path)
        session = session_transition(session=session, status=AgentSession.Status.RUNNING, lease_owner="w")
        session_transition(session=session, status=AgentSession.Status.FAILED, owner="w",
                           error=f"pytest: 3 failed (attempt {attempt + 1})")
        task = task_failed(task=task, reason=f"acceptance test failed (attempt {attempt + 1})")
        if task.status == "ready":
            task = task_transition(task=task, to="running")
    return task


def test_the_last_failure_opens_an_intervention_with_the_errors(task, owner, api_client):
    jobs_drain(lambda: fail_attempts(task))  # runs the jobs the pause queued: recovery and notification
    task.refresh_from_db()

    pause = PausedSession.objects.get(current_task=task, resolved=False)
    assert task.status == "paused" and pause.pause_type == "attempts_exhausted"
    assert [e["error"] for e in pause.blocker_info["errors"]][:2] == ["pytest: 3 failed (attempt 3)",
                                                                      "pytest: 3 failed (attempt 2)"]
    assert pause.actions.filter(action_type="notification").exists()  # the notification step ran (and recorded)
    listed = api_client(owner).get("/api/interventions/active").json()
    assert [item["pause_type"] for item in listed] == ["attempts_exhausted"]


def test_resuming_gives_fresh_attempts_and_the_notes_reach_the_next_prompt(task, owner):
    task = fail_attempts(task)
    pause = PausedSession.objects.get(current_task=task, resolved=False)

    pause_resolve(pause=pause, by="olivia", notes="The tests need the fixtures folder; it is there now.")

    task.refresh_from_db()
    assert (task.status, task.attempts) == ("ready", 0)
    brief = coding_brief(task=task, workdir=Path(task.project.repo_path), branch="yf/t1")
    assert "Earlier attempts of this task did not succeed" in brief.opening
    assert "Notes from olivia: The tests need the fixtures folder; it is there now." in brief.opening
    assert "acceptance test failed (attempt 3)" in brief.opening
