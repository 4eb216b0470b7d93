"""Planning sessions: the plan comes through the submit_plan tool, bad plans are answered with their problems."""

from __future__ import annotations

import copy

import pytest

from apps.agents.models import AgentSession
from apps.agents.planning import MAX_PLAN_TRIES
from apps.agents.services import session_create
from apps.orchestration.runs import planning_execute

pytestmark = pytest.mark.django_db


@pytest.fixture
def planning_session(project) -> AgentSession:
    return session_create(project=project, kind="planning", model="claude-opus-5-5", provider="anthropic",
                          workdir=project.repo_path)


def _with_cycle(plan: dict) -> dict:
    bad = copy.deepcopy(plan)
    bad["epics"][0]["tasks"][0]["depends_on"] = ["T3"]  # T1 → T3 → T2 → T1
    return bad


def test_a_valid_plan_is_imported(claude, planning_session, example_plan):
    claude.tool_use("submit_plan", example_plan, thinking="Three epics.")
    claude.text("Planned: three epics.")

    result = planning_execute(session=planning_session)

    project = planning_session.project
    project.refresh_from_db()
    assert result.outcome.completed and result.imported.tasks == 9
    assert project.tasks.count() == 9 and project.status == "planned"
    assert "tool_choice" not in claude.requests[0]
    assert claude.requests[0]["tools"][0]["name"] == "submit_plan"
    assert "epics" in claude.requests[0]["tools"][0]["input_schema"]["properties"]


def test_an_invalid_plan_is_answered_with_its_problems_and_the_retry_is_accepted(claude, planning_session,
                                                                                  example_plan):
    claude.tool_use("submit_plan", _with_cycle(example_plan))
    claude.tool_use("submit_plan", example_plan)
    claude.text("Fixed the cycle.")

    result = planning_execute(session=planning_session)

    assert result.outcome.completed and result.imported.tasks == 9
    refusal = claude.requests[1]["messages"][-1]["content"][0]
    assert refusal["type"] == "tool_result" and refusal["is_error"] is True
    assert "cycle" in refusal["content"] and "try 1 of 3" in refusal["content"]


def test_a_text_answer_is_met_with_a_request_to_call_the_tool(claude, planning_session, example_plan):
    claude.text("Here is my plan: first build storage, then the API…")
    claude.tool_use("submit_plan", example_plan)
    claude.text("Submitted.")

    result = planning_execute(session=planning_session)

    assert result.outcome.completed
    ask = claude.requests[1]["messages"][-1]
    assert ask["role"] == "user" and "submit_plan" in str(ask["content"])


def test_planning_gives_up_after_three_bad_tries_and_keeps_what_the_model_sent(claude, planning_session,
                                                                                 example_plan):
    claude.tool_use("submit_plan", _with_cycle(example_plan))
    claude.tool_use("submit_plan", {"epics": [{"key": "E1", "title": "x", "tasks": [], "colour": "red"}]})
    claude.tool_use("submit_plan", {"nonsense": True})

    result = planning_execute(session=planning_session)

    planning_session.refresh_from_db()
    assert result.outcome.status == "failed" and result.outcome.reason == "invalid_plan"
    assert planning_session.status == "failed" and f"after {MAX_PLAN_TRIES} tries" in planning_session.error
    assert planning_session.project.tasks.count() == 0
    kept = [e.payload["input"] for e in planning_session.events.filter(type="tool_use").order_by("seq")]
    assert kept[1]["epics"][0]["colour"] == "red" and kept[2] == {"nonsense": True}
    assert len(claude.requests) == 3


def test_the_replay_model_plans_the_kvstore_example(settings, owner):
    from apps.orchestration.runs import planning_start
    from apps.projects.services import project_create

    settings.ANTHROPIC_API_KEY = None
    project = project_create(owner=owner, name="kvstore", spec="A key-value store command line app.")
    session = planning_start(project=project)
    assert session.provider == "replay" and "offline replay model" in session.model_label

    result = planning_execute(session=session)

    assert result.outcome.completed and result.imported.tasks == 6
    assert session.costs.filter(simulated=True).count() == 2
