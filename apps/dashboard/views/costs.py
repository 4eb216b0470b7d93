"""The costs page: what a project spent (in all, by model, task type, day and session), where it stands against
its budget, and what its open tasks will likely cost. Read-only: approving more budget is on the interventions
page."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.safestring import SafeString

from apps.dashboard import charts
from apps.dashboard.charts import money
from apps.dashboard.views.common import project_context, project_for
from apps.interventions.selectors import budget_paused
from apps.learning.costs import BudgetState, CostForecast, CostSummary, cost_forecast, costs_summary, forecast_line

SESSIONS_SHOWN = 10  # the dearest sessions; the sessions page lists them all


def costs(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for(request, slug)
    summary = costs_summary(project=project, sessions=SESSIONS_SHOWN)
    forecast = cost_forecast(project=project)
    context = {
        **project_context(request, project, "costs"),
        "summary": summary, "forecast": forecast, "forecast_line": forecast_line(forecast),
        "budget_paused": budget_paused(project=project), "budget": _budget(summary.budget),
        "charts": _charts(summary), "amounts": _amounts(summary, forecast),
        "days": charts.cumulative(summary.by_day),
    }
    return render(request, "dashboard/costs.html", context)


def _charts(summary: CostSummary) -> dict[str, SafeString]:
    return {
        "by_model": charts.bar_chart(_bars(summary.by_model, "model"), title="Spend by model"),
        "by_task_type": charts.bar_chart(_bars(summary.by_task_type, "task_type"), title="Spend by task type"),
        "by_day": charts.time_chart(summary.by_day, budget=summary.budget.budget_usd),
    }


def _bars(rows: Iterable[dict], key: str) -> list[charts.Bar]:
    return [charts.Bar(label=row[key] or "unknown", value=row["cost_usd"], shown=money(row["cost_usd"]))
            for row in rows]


def _budget(budget: BudgetState) -> dict | None:
    """The meter and the words beside it (the colour is never the only sign of an overrun); None: no budget."""
    limit, spent = budget.budget_usd, budget.spent_usd
    if limit is None:
        return None
    return {"meter": charts.budget_meter(spent=spent, budget=limit), "over": spent > limit,
            "percent": charts.percent(charts.budget_fraction(spent, limit)),
            "spent": money(spent), "budget": money(limit), "difference": money(abs(limit - spent))}


def _amounts(summary: CostSummary, forecast: CostForecast) -> dict[str, str]:
    """The headline figures, formatted once; the tables print the exact four-place values instead."""
    figures: dict[str, Decimal] = {
        "total": summary.total_usd, "replayed": summary.simulated_usd,
        "charged": summary.total_usd - summary.simulated_usd,
        "likely": forecast.likely_usd, "worst": forecast.worst_usd,
        "likely_total": forecast.likely_total_usd, "worst_total": forecast.worst_total_usd,
    }
    return {**{name: money(value) for name, value in figures.items()},
            "cache_read_share": charts.percent(summary.cache_read_share),
            "tokens": f"{sum(summary.tokens.values()):,}"}
