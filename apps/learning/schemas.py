"""API shapes for expertise, costs and model statistics (no __future__: ninja reads annotations at runtime)."""

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from ninja import Field, Schema

from apps.learning.costs import CostForecast


class ExpertiseSummaryOut(Schema):
    domain: str
    version: int
    line_count: int
    validated_at: datetime | None
    updated: datetime | None
    counts: dict[str, int] = Field(description="Items per list: failures, techniques, patterns, core_files.")


class ExpertiseOut(ExpertiseSummaryOut):
    content: dict
    markdown: str


class ExpertiseUpdateOut(Schema):
    id: int
    version: int
    change_type: str
    summary: str
    diff: str
    session_id: int | None
    author: str | None
    created: datetime


class ExpertiseChangeOut(Schema):
    expertise: ExpertiseOut
    update: ExpertiseUpdateOut


class BudgetOut(Schema):
    budget_usd: Decimal | None
    spent_usd: Decimal
    remaining_usd: Decimal | None
    used: float | None = Field(description="Share of the budget spent (1.0 = all of it).")


class ModelCostOut(Schema):
    model: str
    cost_usd: Decimal
    calls: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int


class TaskTypeCostOut(Schema):
    task_type: str
    cost_usd: Decimal
    calls: int
    sessions: int


class SessionCostOut(Schema):
    session_id: int
    kind: str
    status: str
    task: str | None
    tier: str
    model: str
    turns: int
    calls: int
    cost_usd: Decimal


class DayCostOut(Schema):
    day: date
    cost_usd: Decimal
    calls: int


class CostsOut(Schema):
    total_usd: Decimal
    simulated_usd: Decimal = Field(description="Part played by the offline replay model: nothing was charged.")
    calls: int
    tokens: dict[str, int]
    cache_read_share: float = Field(description="Share of prompt tokens read from the cache.")
    budget: BudgetOut
    by_model: list[ModelCostOut]
    by_task_type: list[TaskTypeCostOut]
    by_session: list[SessionCostOut]
    by_day: list[DayCostOut]


@dataclass(frozen=True)
class ForecastOut(CostForecast):
    """The forecast as `costs.cost_forecast` makes it, plus its one-line summary."""

    summary: str = ""


class ModelStatOut(Schema):
    tier: str
    model: str
    task_type: str
    sessions: int
    completed: int
    failed: int
    success_rate: float
    attempts_per_task: float
    total_cost_usd: Decimal
    avg_cost_usd: Decimal
    avg_turns: float
