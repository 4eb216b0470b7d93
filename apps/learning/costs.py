"""What a project spent and what it will likely spend.

Every LLM call already has an `AgentCost` row priced at the `ModelPrice` in force (cache reads and writes at
their own rates); this module only aggregates those rows and forecasts from them:
- `costs_summary`: totals, by model, by task type, by session, by day, and the budget's state;
- `cost_forecast`: for the tasks not done yet, the tier each would get now (`recommend_model`) and what a task
  costs on that tier in this project's own history — the median as the likely case, the dearest task with a
  margin as the worst case. A tier without history here is scaled from another tier's history by their price
  ratio; with no history at all a typical session's tokens (`TYPICAL_TASK_USAGE`) are priced.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from apps.agents.models import AgentCost, ModelPrice
from apps.agents.pricing import TokenUsage, cost_of, price_for
from apps.agents.selectors import project_spent
from apps.learning.model_selector import TIERS, history_by_tier, recommend_model
from apps.projects.models import Project, TaskStatus

CENT = Decimal("0.0001")
WORST_MARGIN = Decimal("1.5")  # the dearest task seen, plus half again: retries and longer tasks happen
NO_HISTORY_WORST = Decimal(3)  # with nothing seen yet, the worst case is three typical sessions
# A typical coding session of ~12 turns with prompt caching: most of the prompt is read from the cache.
TYPICAL_TASK_USAGE = TokenUsage(input_tokens=20_000, output_tokens=12_000, cache_read_tokens=240_000,
                                cache_write_tokens=40_000)
SESSIONS_SHOWN = 50


def _money(value: Decimal | None) -> Decimal:
    return Decimal(value or 0).quantize(CENT)


@dataclass(frozen=True)
class BudgetState:
    budget_usd: Decimal | None  # None: the project has no budget (then remaining and used are None too)
    spent_usd: Decimal
    remaining_usd: Decimal | None
    used: float | None  # the share of the budget spent; a zero budget counts as used up


@dataclass(frozen=True)
class CostSummary:
    """What a project spent. The breakdowns are rows of {group, cost_usd, calls, tokens…}, dearest first."""

    total_usd: Decimal
    simulated_usd: Decimal  # replayed calls: priced, not charged
    calls: int
    tokens: dict[str, int]  # input, output, cache_read, cache_write
    cache_read_share: float
    budget: BudgetState
    by_model: list[dict] = field(default_factory=list)
    by_task_type: list[dict] = field(default_factory=list)
    by_session: list[dict] = field(default_factory=list)
    by_day: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class TierForecast:
    tier: str
    model: str
    tasks: int
    per_task_likely_usd: Decimal
    per_task_worst_usd: Decimal
    likely_usd: Decimal
    worst_usd: Decimal
    basis: str  # what the per-task figures rest on


@dataclass(frozen=True)
class CostForecast:
    remaining_tasks: int
    spent_usd: Decimal
    budget_usd: Decimal | None
    likely_usd: Decimal
    worst_usd: Decimal
    likely_total_usd: Decimal
    worst_total_usd: Decimal
    fits_budget: bool | None  # None without a budget
    worst_fits_budget: bool | None
    by_tier: list[TierForecast]


# ------------------------------------------------------------------------------------------------ what was spent


def costs_summary(*, project: Project, sessions: int = SESSIONS_SHOWN) -> CostSummary:
    rows = AgentCost.objects.filter(project=project)
    totals = rows.aggregate(cost=Sum("cost_usd"), calls=Count("id"),
                            simulated=Sum("cost_usd", filter=Q(simulated=True)),
                            input=Sum("input_tokens"), output=Sum("output_tokens"),
                            cache_read=Sum("cache_read_tokens"), cache_write=Sum("cache_write_tokens"))
    tokens = {k: int(totals[k] or 0) for k in ("input", "output", "cache_read", "cache_write")}
    prompt = tokens["input"] + tokens["cache_read"] + tokens["cache_write"]
    return CostSummary(
        total_usd=_money(totals["cost"]), simulated_usd=_money(totals["simulated"]), calls=totals["calls"],
        tokens=tokens, cache_read_share=round(tokens["cache_read"] / prompt, 3) if prompt else 0.0,
        budget=_budget(project, _money(totals["cost"])),
        by_model=_grouped(rows, "model"),
        by_task_type=_by_task_type(rows),
        by_session=_by_session(rows, sessions),
        by_day=[{"day": r["day"], "cost_usd": _money(r["cost"]), "calls": r["calls"]}
                for r in rows.annotate(day=TruncDate("created")).values("day")
                .annotate(cost=Sum("cost_usd"), calls=Count("id")).order_by("day")],
    )


def _budget(project: Project, spent: Decimal) -> BudgetState:
    budget = project.budget_usd
    if budget is None:
        return BudgetState(budget_usd=None, spent_usd=spent, remaining_usd=None, used=None)
    return BudgetState(budget_usd=budget, spent_usd=spent, remaining_usd=_money(budget - spent),
                       used=round(float(spent / budget), 3) if budget > 0 else 1.0)


def _grouped(rows, key: str) -> list[dict]:
    data = rows.values(key).annotate(cost=Sum("cost_usd"), calls=Count("id"), input=Sum("input_tokens"),
                                     output=Sum("output_tokens"), cache_read=Sum("cache_read_tokens"),
                                     cache_write=Sum("cache_write_tokens")).order_by("-cost", key)
    return [{key: r[key], "cost_usd": _money(r["cost"]), "calls": r["calls"], "input_tokens": r["input"] or 0,
             "output_tokens": r["output"] or 0, "cache_read_tokens": r["cache_read"] or 0,
             "cache_write_tokens": r["cache_write"] or 0} for r in data]


def _by_task_type(rows) -> list[dict]:
    data = (rows.values("session__task_type", "session__kind")
            .annotate(cost=Sum("cost_usd"), calls=Count("id"), sessions=Count("session", distinct=True)))
    merged: dict[str, dict] = {}
    for r in data:  # planning sessions have no task: they are their own type
        name = r["session__task_type"] or ("planning" if r["session__kind"] == "planning" else "unclassified")
        entry = merged.setdefault(name, {"task_type": name, "cost_usd": Decimal(0), "calls": 0, "sessions": 0})
        entry["cost_usd"] += _money(r["cost"])
        entry["calls"] += r["calls"]
        entry["sessions"] += r["sessions"]
    return sorted(merged.values(), key=lambda e: (-e["cost_usd"], e["task_type"]))


def _by_session(rows, limit: int) -> list[dict]:
    data = (rows.values("session_id", "session__kind", "session__status", "session__model_tier", "session__model",
                        "session__task__key", "session__turns")
            .annotate(cost=Sum("cost_usd"), calls=Count("id")).order_by("-cost", "session_id")[:limit])
    return [{"session_id": r["session_id"], "kind": r["session__kind"], "status": r["session__status"],
             "task": r["session__task__key"], "tier": r["session__model_tier"], "model": r["session__model"],
             "turns": r["session__turns"], "calls": r["calls"], "cost_usd": _money(r["cost"])} for r in data]


# ------------------------------------------------------------------------------------------------ what it will take


def _task_costs_by_tier(project: Project) -> dict[str, list[Decimal]]:
    """Per tier, what each finished task of the project cost on it (all its sessions on that tier)."""
    rows = (AgentCost.objects.filter(project=project, task__status=TaskStatus.DONE).exclude(session__model_tier="")
            .values("task_id", "session__model_tier").annotate(cost=Sum("cost_usd")))
    costs: dict[str, list[Decimal]] = defaultdict(list)
    for r in rows:
        costs[r["session__model_tier"]].append(Decimal(r["cost"] or 0))
    return costs


def _tier_price(tier: str) -> ModelPrice | None:
    return price_for(settings.MODEL_TIERS[tier], timezone.localdate())


def _price_ratio(tier: str, other: str) -> Decimal:
    mine, theirs = _tier_price(tier), _tier_price(other)
    if mine is None or theirs is None or not theirs.output_per_mtok:
        return Decimal(1)
    return (mine.input_per_mtok + mine.output_per_mtok) / (theirs.input_per_mtok + theirs.output_per_mtok)


def tier_estimate(tier: str, history: dict[str, list[Decimal]]) -> dict:
    """Per-task likely and worst cost on `tier`, and what the figures rest on."""
    seen = history.get(tier) or []
    if seen:
        likely = Decimal(statistics.median(seen))
        return {"likely": likely, "worst": max(seen) * WORST_MARGIN,
                "basis": f"{len(seen)} finished task{'s' if len(seen) != 1 else ''} of this project on {tier}"}
    for other in sorted(history, key=lambda t: -len(history[t])):
        if history[other]:
            ratio = _price_ratio(tier, other)
            likely = Decimal(statistics.median(history[other])) * ratio
            return {"likely": likely, "worst": max(history[other]) * ratio * WORST_MARGIN,
                    "basis": f"scaled from {len(history[other])} task(s) on {other} by the price ratio"}
    price = _tier_price(tier)
    likely = cost_of(price, TYPICAL_TASK_USAGE) if price else Decimal(0)
    return {"likely": likely, "worst": likely * NO_HISTORY_WORST,
            "basis": "no history yet: a typical 12-turn cached session at today's prices"}


def cost_forecast(*, project: Project) -> CostForecast:
    """What the tasks not done yet will likely cost, and at worst, per tier; against the budget."""
    remaining = list(project.tasks.exclude(status__in=(TaskStatus.DONE, TaskStatus.CANCELLED))
                     .select_related("project", "epic").prefetch_related("tests"))
    spent = project_spent(project=project)
    history, tiers = history_by_tier(), Counter()
    for task in remaining:
        tiers[recommend_model(task=task, history=history, spent=spent).tier] += 1
    spent_on_open = _money(AgentCost.objects.filter(task__in=remaining).aggregate(total=Sum("cost_usd"))["total"])
    own = _task_costs_by_tier(project)
    by_tier = []
    for tier in TIERS:
        estimate = tier_estimate(tier, own)
        count = tiers.get(tier, 0)
        by_tier.append(TierForecast(
            tier=tier, model=settings.MODEL_TIERS[tier], tasks=count,
            per_task_likely_usd=_money(estimate["likely"]), per_task_worst_usd=_money(estimate["worst"]),
            likely_usd=_money(estimate["likely"] * count), worst_usd=_money(estimate["worst"] * count),
            basis=estimate["basis"]))
    # What open tasks already spent counts against the likely figure (it is already in `spent`), never below 0.
    likely = max(Decimal(0), sum((t.likely_usd for t in by_tier), Decimal(0)) - spent_on_open)
    worst = sum((t.worst_usd for t in by_tier), Decimal(0))
    budget = project.budget_usd
    return CostForecast(
        remaining_tasks=len(remaining), spent_usd=_money(spent), budget_usd=budget,
        likely_usd=_money(likely), worst_usd=_money(worst),
        likely_total_usd=_money(spent + likely), worst_total_usd=_money(spent + worst),
        fits_budget=None if budget is None else spent + likely <= budget,
        worst_fits_budget=None if budget is None else spent + worst <= budget,
        by_tier=by_tier,
    )


def forecast_line(forecast: CostForecast) -> str:
    """One line for the command line and pages, e.g. before a run starts."""
    tiers = ", ".join(f"{t.tasks} on {t.tier}" for t in forecast.by_tier if t.tasks)
    line = (f"forecast for {forecast.remaining_tasks} open task(s) ({tiers or 'none'}): likely "
            f"${forecast.likely_usd:.2f}, worst ${forecast.worst_usd:.2f}; spent ${forecast.spent_usd:.2f}")
    if forecast.budget_usd is not None:
        verdict = "fits" if forecast.fits_budget else "does NOT fit"
        line += f"; budget ${forecast.budget_usd:.2f} ({verdict} the likely case)"
    return line
