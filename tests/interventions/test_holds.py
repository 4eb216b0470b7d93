"""Account-wide holds through the real SDK against the local fake Anthropic server: a 429 storm holds every
session on the key (none fails, no task is burned) and the hold's end continues them all."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule

from apps.agents.models import AgentSession
from apps.agents.providers import provider_account
from apps.interventions import holds
from apps.interventions.models import InterventionAction, PausedSession, ProviderAccount
from apps.orchestration import lifecycle, runs
from apps.projects.models import Project, Task

pytestmark = pytest.mark.django_db


def _agent(body: dict) -> dict:
    """A well-behaved Claude for the tasks of `replay_project`: write the task's file, report done, stop."""
    opening = body["messages"][0]["content"]
    opening = opening if isinstance(opening, str) else " ".join(block.get("text", "") for block in opening)
    path = next(name for name in ("a.txt", "b.txt", "c.txt") if f"Write {name}" in opening)
    turn = sum(1 for message in body["messages"] if message["role"] == "assistant")
    steps = [
        [{"type": "tool_use", "name": "write_file", "input": {"path": path, "content": path[0].upper()}}],
        [{"type": "tool_use", "name": "update_task_status", "input": {"status": "done", "evidence": "written"}}],
        [{"type": "text", "text": "Done."}],
    ]
    return {"content": steps[turn]}


@pytest.fixture
def stormy(replay_project, claude, settings):
    """Three independent tasks on one Anthropic key; the fake answers 429 (retry-after 1 s) while `storm` is on."""
    settings.ANTHROPIC_MAX_RETRIES = 0  # the SDK would otherwise wait out the storm itself
    settings.LLM_PROVIDER = "anthropic"
    project = replay_project("stormy", {"E": [("A", [], "a.txt", "A"), ("B", [], "b.txt", "B"),
                                              ("C", [], "c.txt", "C")]})
    weather = {"storm": True}
    claude.handler(lambda body: {"status": 429, "type": "rate_limit_error", "message": "rate limited",
                                 "retry_after": 1} if weather["storm"] else _agent(body))
    return project, weather


def test_a_429_storm_holds_every_session_of_the_key_and_resumes_them_after_the_reset(stormy, claude):
    project, weather = stormy
    runs.jobs_drain(lambda: lifecycle.run_start(project=project, max_concurrency=2))

    pauses = PausedSession.objects.filter(project=project).order_by("pk")
    assert [p.pause_type for p in pauses] == ["rate_limit", "rate_limit"]
    assert all(p.can_auto_resume and p.provider_account == provider_account() for p in pauses)
    assert len(claude.requests) == 1  # the second session held before calling: the storm was not fed
    tasks = {t.key: t for t in Task.objects.filter(project=project)}
    assert {tasks["A"].status, tasks["B"].status} == {"paused"}
    assert tasks["C"].status == "ready" and tasks["C"].attempts == 0  # not started while held
    assert not AgentSession.objects.filter(project=project, status="failed").exists()
    account = ProviderAccount.objects.get(fingerprint=provider_account())
    assert account.held and account.hold_kind == "rate_limit"
    release = Schedule.objects.get(name=f"yokeflow-hold-{account.fingerprint}")
    assert release.func == holds.RELEASE_JOB and release.next_run > account.hold_until
    assert Project.objects.get(pk=project.pk).status == "running"  # waiting, not finished

    assert holds.holds_release() == []  # too early: nothing is released before the reset
    weather["storm"] = False
    time.sleep(max(0.0, (account.hold_until - timezone.now()).total_seconds()) + 0.05)
    runs.jobs_drain(holds.holds_release)

    assert set(Task.objects.filter(project=project).values_list("status", flat=True)) == {"done"}
    assert Project.objects.get(pk=project.pk).status == "completed"
    assert all(p.resolved and p.resolved_by == "automatic: provider hold ended" for p in pauses.all())
    assert set(AgentSession.objects.filter(project=project).values_list("status", flat=True)) == {"completed"}
    assert InterventionAction.objects.filter(action_type="hold_released").count() == 1
    assert not ProviderAccount.objects.get(pk=account.pk).held


def test_repeated_server_failures_open_the_circuit_and_hold_the_account(stormy, claude, settings):
    project, _weather = stormy
    settings.CIRCUIT_FAILURE_THRESHOLD = 2
    claude.handler(lambda body: {"status": 500, "type": "api_error", "message": "boom"})
    runs.jobs_drain(lambda: lifecycle.run_start(project=project, max_concurrency=1))

    pause = PausedSession.objects.get(project=project)
    assert pause.pause_type == "circuit_open" and pause.can_auto_resume
    assert pause.blocker_info["hold_kind"] == "circuit_open"
    account = ProviderAccount.objects.get(fingerprint=provider_account())
    assert account.held and account.consecutive_failures == 2
    # The first failure was an ordinary failed attempt (the task went back to ready); the second opened it.
    failed = AgentSession.objects.filter(project=project, status="failed", stop_reason="provider_server_error")
    assert failed.count() == 1


def test_the_reset_time_comes_from_the_providers_headers(settings):
    now = timezone.now()
    later = (now + timedelta(seconds=30)).isoformat()
    latest = (now + timedelta(seconds=45)).isoformat()
    assert abs((holds.reset_time({"resets": [later, latest]}) - now).total_seconds() - 45) < 1
    assert abs((holds.reset_time({"retry_after": "7"}) - now).total_seconds() - 7) < 1
    assert abs((holds.reset_time({}) - now).total_seconds() - settings.RATE_LIMIT_DEFAULT_HOLD) < 1
    settings.RATE_LIMIT_MAX_HOLD = 60
    assert (holds.reset_time({"retry_after": "99999"}) - now).total_seconds() <= 61
