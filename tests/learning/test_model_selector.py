"""Model choice: complexity picks the tier, overrides win, history shifts it, a budget near its end downgrades,
and every session records the choice and its reason."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.agents.models import AgentCost, AgentSession
from apps.agents.services import session_create, session_transition
from apps.learning.model_selector import analyze_complexity, model_stats, recommend_model
from apps.orchestration import lifecycle, runs
from apps.projects.models import Task
from apps.projects.plan import plan_import

pytestmark = pytest.mark.django_db

SIMPLE = {"key": "S", "title": "Add a README", "description": "Write a short README.", "complexity": 1,
          "tests": [{"description": "exists", "command": "test -f README.md"}]}
COMPLEX = {"key": "C", "title": "Design the concurrent transaction scheduler",
           "description": ("Design and implement a distributed, concurrent scheduler with optimistic locking, "
                           "retries with backoff and an idempotent commit protocol; keep the invariants under "
                           "race conditions and migrate the schema. " * 8),
           "domain": "database", "complexity": 9, "estimate_minutes": 240, "depends_on": ["S", "M1", "M2"],
           "tests": [{"description": f"case {i}", "command": f"pytest -q tests/test_{i}.py"} for i in range(6)]}
MIDDLE = [{"key": f"M{i}", "title": f"Add the list endpoint {i}", "description": "A JSON endpoint with paging.",
           "domain": "api", "complexity": 5, "tests": [{"description": "ok", "command": "pytest -q"}]}
          for i in (1, 2)]


@pytest.fixture
def tasks(project) -> dict[str, Task]:
    plan_import(project=project, data={"epics": [
        {"key": "E0", "title": "Basics", "priority": 0, "tasks": [SIMPLE, *MIDDLE]},
        {"key": "E1", "title": "Core", "priority": 1, "depends_on": [], "tasks": [COMPLEX]},
    ]}, replace=False, apply_suggestions=False)
    return {t.key: t for t in Task.objects.filter(project=project).select_related("project", "epic")}


def test_a_simple_task_gets_haiku_and_a_complex_one_opus(tasks):
    simple, complex_ = recommend_model(task=tasks["S"]), recommend_model(task=tasks["C"])

    assert simple.tier == "haiku" and simple.model == "claude-haiku-5-5"
    assert complex_.tier == "opus" and complex_.model == "claude-opus-5-5"
    assert recommend_model(task=tasks["M1"]).tier == "sonnet"
    scores = analyze_complexity(tasks["C"])
    assert scores.reasoning_depth > 0.9 and scores.domain_specificity == 0.7 and scores.task_type == "database"
    assert "complexity 0." in complex_.reason and "→ opus" in complex_.reason


def test_overrides_win_task_type_before_epic_priority(tasks, project):
    project.model_overrides = {"task_types": {"general": "opus"}, "epic_priorities": {"1": "haiku"}}
    project.save()
    for task in tasks.values():
        task.project = project

    assert recommend_model(task=tasks["S"]).tier == "opus"  # task type override beats its simplicity
    chosen = recommend_model(task=tasks["C"])
    assert chosen.tier == "haiku" and chosen.reason == "override: epic priority 1 → haiku"


def test_near_the_budget_limit_the_tier_goes_down_with_a_reason(tasks, project):
    project.budget_usd = Decimal("10.00")
    project.save()
    task = tasks["C"]
    task.project = project

    assert recommend_model(task=task, spent=Decimal("5.00")).tier == "opus"
    near = recommend_model(task=task, spent=Decimal("8.20"))
    assert near.tier == "sonnet"
    assert "budget: 82% used ($8.20 of $10.00) → sonnet instead of opus" in near.reason
    assert recommend_model(task=task, spent=Decimal("9.50")).tier == "haiku"


def _finished(task: Task, tier: str, ok: bool, cost: str = "0.10") -> AgentSession:
    session = session_create(project=task.project, kind="coding", task=task, model=f"claude-{tier}-5-5",
                             provider="replay", model_tier=tier, task_type="api", model_reason="test")
    session_transition(session=session, status="running")
    session_transition(session=session, status="completed" if ok else "failed", stop_reason="test")
    AgentSession.objects.filter(pk=session.pk).update(cost_usd=Decimal(cost))
    return session


def test_history_moves_a_task_type_up_a_tier_when_its_tier_keeps_failing(tasks, settings):
    for ok in (False, False, True):
        _finished(tasks["M2"], "sonnet", ok)

    chosen = recommend_model(task=tasks["M1"])

    assert chosen.tier == "opus"
    assert "history: sonnet completed 1 of 3 api sessions (33%) → opus" in chosen.reason
    stats = {(row["tier"], row["task_type"]): row for row in model_stats(project=tasks["M1"].project)}
    assert stats[("sonnet", "api")]["success_rate"] == pytest.approx(0.333, abs=0.001)
    assert stats[("sonnet", "api")]["attempts_per_task"] == 3.0


def test_a_reliable_cheaper_tier_takes_tasks_from_the_lower_half_of_the_band(tasks):
    for _ in range(3):
        _finished(tasks["M2"], "haiku", True, "0.01")

    chosen = recommend_model(task=tasks["M1"])

    assert chosen.tier == "haiku" and "history: haiku completed 3 of 3 api sessions (100%)" in chosen.reason


def test_every_session_records_its_model_choice(replay_project):
    project = replay_project("chosen", {"E": [("A", [], "a.txt", "A")]})

    runs.jobs_drain(lambda: lifecycle.run_start(project=project))

    session = AgentSession.objects.get(project=project)
    assert session.status == "completed"
    assert (session.model_tier, session.model, session.task_type) == ("haiku", "claude-haiku-5-5", "general")
    assert session.model_reason.startswith("complexity ")
    assert AgentCost.objects.filter(session=session, model="claude-haiku-5-5").exists()


@pytest.mark.parametrize("overrides", [
    {"task_types": {"kitchen": "opus"}}, {"task_types": {"api": "gpt"}}, {"epic_priorities": {"high": "opus"}},
    {"tiers": {}},
])
def test_bad_model_overrides_are_refused_with_the_field(project, owner, api_client, overrides):
    import json

    response = api_client(owner).patch(f"/api/projects/{project.pk}", data=json.dumps(
        {"model_overrides": overrides}), content_type="application/json")

    assert response.status_code == 422
    assert "model_overrides" in json.dumps(response.json())
    project.refresh_from_db()
    assert project.model_overrides == {}
