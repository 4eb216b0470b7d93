"""Costs aggregated from the per-call rows, the forecast from the project's own history, and the API and command
line over costs, model statistics and expertise."""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path

import git
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.agents.models import AgentSession
from apps.agents.pricing import TokenUsage
from apps.agents.services import call_record, session_create, session_transition
from apps.learning.costs import cost_forecast, costs_summary
from apps.projects.models import Task
from apps.projects.plan import plan_import

pytestmark = pytest.mark.django_db

SIMPLE = [{"key": f"S{i}", "title": f"Add note {i}", "description": "A small text file.", "complexity": 1}
          for i in range(4)]


@pytest.fixture
def spent(project):
    """Two simple tasks done on Haiku ($0.02 and $0.04 of calls), one planning session on Sonnet."""
    plan_import(project=project, data={"epics": [{"key": "E", "title": "Notes", "tasks": SIMPLE}]}, replace=False,
                apply_suggestions=False)
    tasks = {t.key: t for t in Task.objects.filter(project=project)}
    for key, output_tokens in (("S0", 40_000), ("S1", 80_000)):  # Haiku: $0.50 per million output tokens
        session = _session(tasks[key], "haiku")
        call_record(session=session, turn=1, model="claude-haiku-5-5",
                    usage=TokenUsage(output_tokens=output_tokens), latency_ms=5, simulated=False)
        Task.objects.filter(pk=tasks[key].pk).update(status="done", completed_at=timezone.now())
    planning = session_create(project=project, kind="planning", model="claude-sonnet-5-5", provider="anthropic")
    call_record(session=planning, turn=1, model="claude-sonnet-5-5",
                usage=TokenUsage(input_tokens=1000, cache_read_tokens=9000, output_tokens=100), latency_ms=5,
                simulated=True)
    return project


def _session(task: Task, tier: str) -> AgentSession:
    session = session_create(project=task.project, kind="coding", task=task, model=f"claude-{tier}-5-5",
                             provider="anthropic", model_tier=tier, task_type="general", model_reason="test")
    session_transition(session=session, status="running")
    session_transition(session=session, status="completed", stop_reason="done")
    return session


def test_the_summary_adds_up_the_calls_by_model_task_type_and_session(spent):
    summary = costs_summary(project=spent)

    # Sonnet since 2026-10-07: $2/M input, $0.10/M cache read, $10/M output → 0.002 + 0.0009 + 0.001
    assert summary.total_usd == Decimal("0.0639") and summary.calls == 3
    assert summary.simulated_usd == Decimal("0.0039")
    assert {r["model"]: r["cost_usd"] for r in summary.by_model} == {
        "claude-haiku-5-5": Decimal("0.0600"), "claude-sonnet-5-5": Decimal("0.0039")}
    assert {r["task_type"]: r["sessions"] for r in summary.by_task_type} == {"general": 2, "planning": 1}
    assert [r["task"] for r in summary.by_session] == ["S1", "S0", None]
    assert summary.cache_read_share == 0.9
    assert summary.budget.budget_usd is None


def test_the_forecast_prices_open_tasks_from_the_projects_own_history(spent):
    spent.budget_usd = Decimal("0.10")
    spent.save()

    forecast = cost_forecast(project=spent)

    haiku = next(t for t in forecast.by_tier if t.tier == "haiku")
    assert forecast.remaining_tasks == 2 and haiku.tasks == 2
    assert haiku.per_task_likely_usd == Decimal("0.0300")  # the median of $0.02 and $0.04
    assert haiku.per_task_worst_usd == Decimal("0.0600")  # the dearest, plus half again
    assert (forecast.likely_usd, forecast.worst_usd) == (Decimal("0.0600"), Decimal("0.1200"))
    assert haiku.basis == "2 finished tasks of this project on haiku"
    opus = next(t for t in forecast.by_tier if t.tier == "opus")
    assert opus.basis.startswith("scaled from 2 task(s) on haiku") and opus.per_task_likely_usd == Decimal("1.2")
    assert forecast.fits_budget is False  # $0.0639 spent + $0.06 likely > $0.10


def test_a_project_without_history_is_forecast_from_a_typical_session(project):
    plan_import(project=project, data={"epics": [{"key": "E", "title": "Notes", "tasks": SIMPLE[:1]}]},
                replace=False, apply_suggestions=False)

    forecast = cost_forecast(project=project)

    haiku = next(t for t in forecast.by_tier if t.tier == "haiku")
    assert haiku.tasks == 1 and haiku.basis.startswith("no history yet")
    assert Decimal(0) < forecast.likely_usd < forecast.worst_usd


def test_the_cost_endpoints_answer_members_and_hide_the_project_from_outsiders(spent, owner, outsider, api_client):
    client = api_client(owner)
    costs = client.get(f"/api/projects/{spent.pk}/costs").json()
    assert costs["total_usd"] == "0.0639" and costs["by_model"][0]["model"] == "claude-haiku-5-5"
    forecast = client.get(f"/api/projects/{spent.pk}/costs/forecast").json()
    assert forecast["remaining_tasks"] == 2 and forecast["summary"].startswith("forecast for 2 open task(s)")
    stats = client.get(f"/api/projects/{spent.pk}/model-stats").json()
    assert stats == [{**stats[0], "tier": "haiku", "task_type": "general", "sessions": 2, "completed": 2,
                      "success_rate": 1.0, "attempts_per_task": 1.0}]
    for path in ("costs", "costs/forecast", "model-stats", "expertise"):
        assert api_client(outsider).get(f"/api/projects/{spent.pk}/{path}").status_code == 404


def _repo_with(project, files: dict[str, str]) -> None:
    repo = git.Repo.init(project.repo_path, initial_branch=project.default_branch, mkdir=True)
    for name, text in files.items():
        path = Path(project.repo_path) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    repo.index.add(list(files))
    repo.index.commit("files")


def test_expertise_endpoints_show_improve_validate_and_history(project, owner, viewer, api_client):
    _repo_with(project, {"app/models.py": "x", "migrations/0001.sql": "y", "README.md": "z"})
    client = api_client(owner)
    base = f"/api/projects/{project.pk}/expertise"

    listing = client.get(base).json()
    assert [row["domain"] for row in listing][:2] == ["database", "api"] and listing[0]["version"] == 0
    improved = client.post(f"{base}/database/improve")
    assert improved.status_code == 200, improved.content
    body = improved.json()
    assert body["update"]["change_type"] == "improved" and body["expertise"]["version"] == 1
    assert {f["path"] for f in body["expertise"]["content"]["core_files"]} == {"app/models.py", "migrations/0001.sql"}
    validated = client.post(f"{base}/database/validate").json()
    assert validated["update"]["change_type"] == "validated" and validated["expertise"]["validated_at"]
    history = client.get(f"{base}/database/history").json()
    assert [h["change_type"] for h in history] == ["validated", "improved"]
    assert "app/models.py" in history[1]["diff"]
    detail = client.get(f"{base}/database").json()
    assert "app/models.py" in detail["markdown"]

    assert client.get(f"{base}/kitchen").status_code == 422
    assert client.get(f"{base}/database/history?limit=0").status_code == 422
    assert api_client(viewer).post(f"{base}/database/validate").status_code == 403
    assert api_client(viewer).get(f"{base}/database").status_code == 200


def yokeflow(*args: str) -> str:
    out = io.StringIO()
    call_command("yokeflow", *args, stdout=out)
    return out.getvalue()


def test_the_command_line_shows_costs_expertise_and_approves_budget(spent):
    text = yokeflow("costs", spent.slug)
    assert f"{spent.slug}: $0.0639 spent in 3 calls" in text and "claude-haiku-5-5" in text
    assert "forecast for 2 open task(s)" in text

    assert "database" in yokeflow("expertise", spent.slug) and "v0" in yokeflow("expertise", spent.slug)
    assert "nothing learned about api yet" in yokeflow("expertise", spent.slug, "api")
    with pytest.raises(CommandError, match="no_repository|repository"):
        yokeflow("expertise", spent.slug, "api", "--validate")
    with pytest.raises(CommandError, match="kitchen"):
        yokeflow("expertise", spent.slug, "kitchen")

    assert "no budget set" in yokeflow("budget", spent.slug)
    with pytest.raises(CommandError, match="no budget"):
        yokeflow("budget", spent.slug, "--approve", "1", "--by", "alice")
    spent.budget_usd = Decimal("1.00")
    spent.save()
    with pytest.raises(CommandError, match="amount"):
        yokeflow("budget", spent.slug, "--approve", "lots", "--by", "alice")
    assert "raised by $2.50 to $3.50" in yokeflow("budget", spent.slug, "--approve", "+$2.50", "--by", "alice")


def test_a_task_left_running_counts_what_it_spent_against_the_forecast(spent):
    session = _session(Task.objects.get(project=spent, key="S2"), "haiku")
    call_record(session=session, turn=1, model="claude-haiku-5-5", usage=TokenUsage(output_tokens=20_000),
                latency_ms=5, simulated=False)

    assert cost_forecast(project=spent).likely_usd == Decimal("0.0500")  # $0.06 less the $0.01 already spent
    assert json.dumps(asdict(costs_summary(project=spent)), default=str)  # serialisable for the API and pages
