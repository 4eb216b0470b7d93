"""Which Claude model a task gets: Haiku, Sonnet or Opus, and the reason, recorded on its session.

The choice, in order:
1. An override of the project (`model_overrides`): by task type (the task's domain) first, then by the
   priority of its epic. An override is the owner's decision: complexity and history do not change it.
2. Otherwise the task's complexity score: four dimensions in 0..1, each from facts of the task —
   - reasoning_depth: the plan's complexity and words that signal design work (algorithm, concurrency,
     migration, protocol, …);
   - code_complexity: the plan's complexity (1–10) or its estimate, and how many acceptance tests it has;
   - domain_specificity: how specialised its domain is (security > database > … > general);
   - context_requirements: how many tasks it builds on and how long its description is —
   combined as a weighted mean (`MODEL_COMPLEXITY_WEIGHTS`). Below `MODEL_HAIKU_BELOW` → Haiku, from
   `MODEL_OPUS_FROM` → Opus, Sonnet between.
3. History: sessions of the same task type on the chosen tier (across projects) that completed less than
   `MODEL_HISTORY_UPGRADE_BELOW` of the time move the task one tier up; a cheaper tier that completed at least
   `MODEL_HISTORY_DOWNGRADE_FROM` of them takes a task from the lower half of the band. Both need
   `MODEL_HISTORY_MIN_SESSIONS` sessions.
4. Budget: once `MODEL_BUDGET_DOWNGRADE_AT` of the project's budget is spent, one tier down; past the middle of
   what is left, Haiku. This applies to overrides too: money the owner did not approve is not spent.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db.models import Avg, Count, Q, QuerySet, Sum

from apps.agents.models import AgentSession, SessionKind, SessionStatus
from apps.agents.selectors import project_spent
from apps.learning.domains import classify_domain
from apps.projects.models import Domain, Project, Task

TIERS = ("haiku", "sonnet", "opus")
REASONING_WORDS = re.compile(
    r"\b(design|architect\w*|algorithm\w*|concurren\w*|parallel\w*|race|distributed|optimi[sz]\w*|refactor\w*|"
    r"migrat\w*|consisten\w*|transaction\w*|cach\w*|protocol\w*|state machine|recurs\w*|schedul\w*|"
    r"trade-?offs?|invariant\w*|idempoten\w*|lock\w*|retr(y|ies)|backoff|encrypt\w*|performance)\b",
    re.IGNORECASE,
)
DOMAIN_SPECIFICITY = {
    Domain.SECURITY: 0.9, Domain.DATABASE: 0.7, Domain.DEPLOYMENT: 0.6, Domain.API: 0.5,
    Domain.FRONTEND: 0.4, Domain.TESTING: 0.3, Domain.GENERAL: 0.2,
}


@dataclass(frozen=True)
class TaskComplexity:
    reasoning_depth: float
    code_complexity: float
    domain_specificity: float
    context_requirements: float
    overall: float
    task_type: str

    def describe(self) -> str:
        return (f"complexity {self.overall:.2f} (reasoning {self.reasoning_depth:.2f}, "
                f"code {self.code_complexity:.2f}, domain {self.task_type} {self.domain_specificity:.2f}, "
                f"context {self.context_requirements:.2f})")


@dataclass(frozen=True)
class ModelRecommendation:
    tier: str
    model: str
    reason: str
    task_type: str
    complexity: TaskComplexity | None = None
    steps: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["complexity"] = asdict(self.complexity) if self.complexity else None
        return data


@dataclass(frozen=True)
class TierStats:
    sessions: int
    completed: int
    avg_cost: Decimal

    @property
    def success_rate(self) -> float:
        return self.completed / self.sessions if self.sessions else 0.0


def _clamp(value: float) -> float:
    return max(0.0, min(1.0, value))


def _task_text(task: Task) -> str:
    tests = " ".join(f"{t.description} {t.command}" for t in task.tests.all())
    return f"{task.title}\n{task.description}\n{tests}"


def _reasoning_words(text: str) -> set[str]:
    return {match.group(0).lower() for match in REASONING_WORDS.finditer(text)}


def analyze_complexity(task: Task) -> TaskComplexity:
    """The four dimensions and their weighted mean, from the task's own facts (no model call)."""
    text = _task_text(task)
    tests = len(task.tests.all())
    base = (task.complexity - 1) / 9 if task.complexity else _clamp(task.estimate_minutes / 120)
    task_type = classify_domain(task)
    scores = {
        "reasoning_depth": _clamp(0.5 * base + 0.5 * min(1.0, len(_reasoning_words(text)) / 3)),
        "code_complexity": _clamp(0.8 * base + 0.2 * min(1.0, tests / 5)),
        "domain_specificity": DOMAIN_SPECIFICITY.get(task_type, 0.2),
        "context_requirements": _clamp(0.6 * min(1.0, task.dependencies.count() / 4)
                                       + 0.4 * min(1.0, len(task.description) / 1500)),
    }
    weights = settings.MODEL_COMPLEXITY_WEIGHTS
    overall = sum(weights[name] * value for name, value in scores.items()) / sum(weights.values())
    return TaskComplexity(**{k: round(v, 3) for k, v in scores.items()}, overall=round(overall, 3),
                          task_type=task_type)


def tier_for_score(score: float) -> str:
    if score < settings.MODEL_HAIKU_BELOW:
        return "haiku"
    return "opus" if score >= settings.MODEL_OPUS_FROM else "sonnet"


# ------------------------------------------------------------------------------------------------ history


def _finished_coding(project: Project | None = None) -> QuerySet[AgentSession]:
    rows = AgentSession.objects.filter(kind=SessionKind.CODING, status__in=[SessionStatus.COMPLETED,
                                                                            SessionStatus.FAILED])
    rows = rows.exclude(model_tier="").exclude(task_type="")
    return rows.filter(project=project) if project else rows


def history_by_tier(*, project: Project | None = None) -> dict[tuple[str, str], TierStats]:
    """(tier, task type) → finished coding sessions, how many completed, their mean cost."""
    rows = (_finished_coding(project).values("model_tier", "task_type")
            .annotate(n=Count("id"), ok=Count("id", filter=Q(status=SessionStatus.COMPLETED)), cost=Avg("cost_usd")))
    return {(r["model_tier"], r["task_type"]): TierStats(r["n"], r["ok"], Decimal(r["cost"] or 0)) for r in rows}


def model_stats(*, project: Project | None = None) -> list[dict]:
    """Per model tier and task type: sessions, success rate, attempts per task, cost and turns."""
    rows = (_finished_coding(project).values("model_tier", "model", "task_type")
            .annotate(sessions=Count("id"), completed=Count("id", filter=Q(status=SessionStatus.COMPLETED)),
                      tasks=Count("task", distinct=True), total_cost=Sum("cost_usd"), avg_cost=Avg("cost_usd"),
                      avg_turns=Avg("turns"))
            .order_by("task_type", "model_tier"))
    return [{
        "tier": r["model_tier"], "model": r["model"], "task_type": r["task_type"], "sessions": r["sessions"],
        "completed": r["completed"], "failed": r["sessions"] - r["completed"],
        "success_rate": round(r["completed"] / r["sessions"], 3),
        "attempts_per_task": round(r["sessions"] / max(1, r["tasks"]), 2),
        "total_cost_usd": Decimal(r["total_cost"] or 0), "avg_cost_usd": Decimal(r["avg_cost"] or 0).quantize(
            Decimal("0.000001")), "avg_turns": round(float(r["avg_turns"] or 0), 1),
    } for r in rows]


def _shift_by_history(tier: str, score: float, task_type: str,
                      history: dict[tuple[str, str], TierStats]) -> tuple[str, str | None]:
    minimum = settings.MODEL_HISTORY_MIN_SESSIONS
    here = history.get((tier, task_type))
    struggling = here is not None and here.success_rate < settings.MODEL_HISTORY_UPGRADE_BELOW
    if struggling and here.sessions >= minimum and tier != "opus":
        up = TIERS[TIERS.index(tier) + 1]
        return up, (f"history: {tier} completed {here.completed} of {here.sessions} {task_type} sessions "
                    f"({here.success_rate:.0%}) → {up}")
    if tier == "haiku":
        return tier, None
    down = TIERS[TIERS.index(tier) - 1]
    cheaper = history.get((down, task_type))
    low, high = (settings.MODEL_HAIKU_BELOW, settings.MODEL_OPUS_FROM) if tier == "sonnet" else (
        settings.MODEL_OPUS_FROM, 1.0)
    lower_half = score < (low + high) / 2
    if (cheaper and cheaper.sessions >= minimum and cheaper.success_rate >= settings.MODEL_HISTORY_DOWNGRADE_FROM
            and lower_half):
        return down, (f"history: {down} completed {cheaper.completed} of {cheaper.sessions} {task_type} sessions "
                      f"({cheaper.success_rate:.0%}) → {down}")
    return tier, None


# ------------------------------------------------------------------------------------------------ the choice


def _override(project: Project, task: Task, task_type: str) -> tuple[str, str] | None:
    overrides = project.model_overrides or {}
    tier = (overrides.get("task_types") or {}).get(task_type)
    if tier:
        return tier, f"override: task type {task_type} → {tier}"
    priority = task.epic.priority if task.epic_id else None
    tier = (overrides.get("epic_priorities") or {}).get(str(priority))
    if tier:
        return tier, f"override: epic priority {priority} → {tier}"
    return None


def _budget_downgrade(project: Project, tier: str, spent: Decimal | None) -> tuple[str, str | None]:
    if project.budget_usd is None or tier == "haiku":
        return tier, None
    spent = project_spent(project=project) if spent is None else spent
    budget = project.budget_usd
    used = float(spent / budget) if budget > 0 else 1.0
    threshold = settings.MODEL_BUDGET_DOWNGRADE_AT
    if used < threshold:
        return tier, None
    new = "haiku" if used >= (threshold + 1) / 2 else TIERS[TIERS.index(tier) - 1]
    return new, f"budget: {used:.0%} used (${spent:.2f} of ${budget:.2f}) → {new} instead of {tier}"


def recommend_model(*, task: Task, history: dict[tuple[str, str], TierStats] | None = None,
                    spent: Decimal | None = None) -> ModelRecommendation:
    """The tier for `task` and every step of the reasoning. `history` and `spent` may be passed in when many
    tasks are recommended at once (a forecast)."""
    project = task.project
    complexity = analyze_complexity(task)
    task_type = complexity.task_type
    steps: list[str] = []
    override = _override(project, task, task_type)
    if override:
        tier, why = override
        steps.append(why)
    else:
        tier = tier_for_score(complexity.overall)
        steps.append(f"{complexity.describe()} → {tier}")
        history = history_by_tier() if history is None else history
        tier, why = _shift_by_history(tier, complexity.overall, task_type, history)
        if why:
            steps.append(why)
    tier, why = _budget_downgrade(project, tier, spent)
    if why:
        steps.append(why)
    return ModelRecommendation(tier=tier, model=settings.MODEL_TIERS[tier], reason="; ".join(steps),
                               task_type=task_type, complexity=complexity, steps=steps)
