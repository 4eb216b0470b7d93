"""API shapes for sessions, their events and model prices (no __future__: ninja reads annotations at runtime)."""

from datetime import date, datetime
from decimal import Decimal

from ninja import Field, Schema


class SessionOut(Schema):
    id: int
    project_id: int
    task_id: int | None
    task_key: str | None = Field(None, alias="task.key")
    kind: str
    status: str
    model: str
    model_label: str
    model_tier: str = Field(description="haiku, sonnet or opus, as chosen for the task.")
    model_reason: str = Field(description="Why: overrides, complexity score, history, budget.")
    task_type: str
    provider: str
    turns: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: Decimal
    attempts: int
    last_seq: int
    heartbeat_at: datetime | None
    lease_owner: str
    started_at: datetime | None
    ended_at: datetime | None
    duration_ms: int
    stop_reason: str
    error: str
    pause_requested: str = Field(description="Who asked this session to pause and why (it pauses before its next "
                                             "model call); empty when nobody did.")
    created: datetime


class SessionDetailOut(SessionOut):
    checkpoint_turn: int | None = None


class EventOut(Schema):
    seq: int
    type: str
    payload: dict = Field(alias="payload_shown")  # secrets masked again as it is served
    created: datetime


class EventsQuery(Schema):
    after: int = Field(0, ge=0, description="Only events with a larger sequence number.")
    limit: int = Field(500, ge=1, le=5000)


class PauseIn(Schema):
    reason: str = Field("", max_length=200, description="Why; shown on the pause and in its notification.")


class ContinueIn(Schema):
    notes: str = Field("", max_length=10_000)
    force: bool = False


class PriceOut(Schema):
    model: str
    tier: str
    effective_from: date
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cache_write_5m_per_mtok: Decimal
    cache_write_1h_per_mtok: Decimal
    cache_read_per_mtok: Decimal
    long_prompt_threshold: int | None
    legacy: bool


class ModelsOut(Schema):
    provider: str
    notice: str
    tiers: dict[str, str]
    default_tier: str
    deprecated: dict[str, str]
    prices: list[PriceOut]
