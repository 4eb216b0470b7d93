"""Budgets pause, never kill: before each call the project's spend plus that call's worst case must fit; an
approval raises the budget and continues the paused sessions. Real SDK against the local fake Claude."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from apps.agents.models import AgentCost, AgentSession
from apps.agents.selectors import project_spent
from apps.interventions.models import InterventionAction, PausedSession
from apps.orchestration import lifecycle, runs
from apps.projects.models import Project, Task
from apps.projects.services import membership_set

pytestmark = pytest.mark.django_db

USAGE = {"input_tokens": 60_000, "output_tokens": 4_000}
WRITES = 4


def _writer(body: dict) -> dict:
    """An agent that writes WRITES files, reports done and stops; every call is billed USAGE."""
    turn = sum(1 for message in body["messages"] if message["role"] == "assistant")
    if turn < WRITES:
        content = [{"type": "tool_use", "name": "write_file", "input": {"path": f"part{turn}.txt", "content": "x"}}]
    elif turn == WRITES:
        content = [{"type": "tool_use", "name": "write_file", "input": {"path": "a.txt", "content": "A"}},
                   {"type": "tool_use", "name": "update_task_status", "input": {"status": "done", "evidence": "ok"}}]
    else:
        content = [{"type": "text", "text": "Done."}]
    return {"content": content, "usage": USAGE}


@pytest.fixture
def budgeted(replay_project, claude, settings):
    settings.LLM_PROVIDER = "anthropic"
    project = replay_project("budgeted", {"E": [("A", [], "a.txt", "A")]})
    project.budget_usd = Decimal("0.50")
    project.model_overrides = {"task_types": {"general": "sonnet"}}  # priced calls: $0.16 each on Sonnet
    project.save()
    claude.handler(_writer)
    return project


def _approve(client, project: Project, amount: str) -> object:
    return client.post(f"/api/projects/{project.pk}/budget/approve", data=json.dumps({"amount": amount}),
                       content_type="application/json")


def test_a_half_dollar_budget_pauses_before_it_is_exceeded_and_approving_a_dollar_finishes(
        budgeted, claude, owner, api_client):
    project = budgeted
    runs.jobs_drain(lambda: lifecycle.run_start(project=project))

    pause = PausedSession.objects.get(project=project)
    assert pause.pause_type == "budget" and not pause.resolved
    spent_at_pause = project_spent(project=project)
    call = max(AgentCost.objects.filter(project=project).values_list("cost_usd", flat=True))
    assert spent_at_pause <= Decimal("0.50")  # paused before exceeding, not after
    assert spent_at_pause + Decimal(pause.blocker_info["next_call_worst_usd"]) > Decimal("0.50")
    assert Decimal(pause.blocker_info["suggested_usd"]) >= 1
    assert "approve more budget" in pause.pause_reason.lower()
    calls_at_pause = len(claude.requests)
    assert Task.objects.get(project=project).status == "paused"
    assert Project.objects.get(pk=project.pk).status == "paused"

    client = api_client(owner)
    refused = client.post(f"/api/interventions/{pause.pk}/resume", data=json.dumps(
        {"resolved_by": "alice", "resolution_notes": "go"}), content_type="application/json")
    assert refused.status_code == 409 and refused.json()["error"] == "budget_exhausted"
    assert len(claude.requests) == calls_at_pause  # a plain resume without money spends nothing

    responses = []
    runs.jobs_drain(lambda: responses.append(_approve(client, project, "1")))  # the continuation runs here
    assert responses[0].status_code == 200, responses[0].content
    assert responses[0].json()["resumed"] == [pause.pk] and responses[0].json()["still_paused"] == []
    project.refresh_from_db()
    assert project.budget_usd == Decimal("1.50")
    pause.refresh_from_db()
    assert pause.resolved and "Budget raised by $1.00 to $1.50" in pause.resolution_notes
    session = AgentSession.objects.get(project=project)
    assert session.status == "completed" and session.task.status == "done"
    assert project.status == "completed"
    total = project_spent(project=project)
    assert total <= project.budget_usd + call  # never past the budget by more than one call
    assert total > spent_at_pause
    assert InterventionAction.objects.filter(project=project, action_type="budget_approved").count() == 1


def test_budget_approval_refuses_bad_amounts_projects_without_budget_and_viewers(budgeted, owner, viewer,
                                                                                    api_client, project):
    client = api_client(owner)
    for amount in ("0", "-1", "abc", "1000000"):
        response = _approve(client, budgeted, amount)
        assert response.status_code == 422, amount
        assert "amount" in json.dumps(response.json())
    no_budget = _approve(client, project, "1")
    assert no_budget.status_code == 409 and no_budget.json()["error"] == "no_budget"
    membership_set(project=budgeted, user=viewer, role="viewer")
    assert _approve(api_client(viewer), budgeted, "1").status_code in (403, 404)
    budgeted.refresh_from_db()
    assert budgeted.budget_usd == Decimal("0.50")  # nothing changed by refused approvals


def test_the_scheduler_starts_nothing_while_a_session_waits_for_budget(replay_project, claude, settings):
    settings.LLM_PROVIDER = "anthropic"
    project = replay_project("waits", {"E": [("A", [], "a.txt", "A"), ("B", [], "b.txt", "B")]},
                             max_concurrency=1)
    project.budget_usd = Decimal("0.01")  # less than a Sonnet call's worst case: the first call never happens
    project.model_overrides = {"task_types": {"general": "sonnet"}}
    project.save()
    claude.handler(_writer)

    runs.jobs_drain(lambda: lifecycle.run_start(project=project))

    assert claude.requests == []
    statuses = dict(Task.objects.filter(project=project).values_list("key", "status"))
    assert sorted(statuses.values()) == ["paused", "ready"]  # B was not started into the same wall
    assert AgentCost.objects.filter(project=project).count() == 0
