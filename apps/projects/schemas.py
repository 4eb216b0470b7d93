"""API shapes for projects, plans, tasks and the dependency graph."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from ninja import Field, Schema
from pydantic import StringConstraints

from apps.core.validation import Text
from apps.projects.models import (
    KEY_PATTERN,
    SLUG_PATTERN,
    Domain,
    EventKind,
    MergeStrategyChoice,
    RunStrategy,
    TaskStatus,
)

Name = Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]


Tier = Literal["haiku", "sonnet", "opus"]


class ModelOverridesIn(Schema):
    """A tier per task type (the task's domain) and per epic priority; task types are applied first."""

    model_config = {"extra": "forbid"}
    task_types: dict[Domain, Tier] = Field(default_factory=dict)
    epic_priorities: dict[int, Tier] = Field(default_factory=dict)


class ProjectSettingsIn(Schema):
    default_branch: Annotated[Text, StringConstraints(min_length=1, max_length=100)] | None = None
    parallel_enabled: bool | None = None
    max_concurrency: int | None = Field(default=None, ge=1, le=64)
    strategy: RunStrategy | None = None
    merge_strategy: MergeStrategyChoice | None = None
    budget_usd: Decimal | None = Field(default=None, ge=0, max_digits=10, decimal_places=2)
    session_time_limit: int | None = Field(default=None, ge=0, le=24 * 60,
                                           description="Minutes a session may run before it pauses; 0: no limit.")
    model_overrides: ModelOverridesIn | None = None
    env_files: list[Annotated[Text, StringConstraints(min_length=1, max_length=200)]] | None = Field(
        default=None, max_length=20)
    setup_command: Annotated[Text, StringConstraints(max_length=4000)] | None = None
    dev_service: Annotated[Text, StringConstraints(max_length=4000)] | None = None
    network: Literal["none", "registries", "open"] | None = None


class ProjectIn(ProjectSettingsIn):
    name: Name
    slug: Slug | None = None
    spec: Text = Field(default="", max_length=500_000)
    repo_path: Text = Field(default="", max_length=1024)


class ProjectPatch(ProjectSettingsIn):
    name: Name | None = None
    spec: Text | None = Field(default=None, max_length=500_000)


class ProjectOut(Schema):
    id: int
    slug: str
    name: str
    status: str
    owner: str = Field(alias="owner.username")
    repo_path: str
    default_branch: str
    parallel_enabled: bool
    max_concurrency: int
    strategy: str
    merge_strategy: str
    budget_usd: Decimal | None
    session_time_limit: int
    model_overrides: dict
    env_files: list[str]
    setup_command: str
    dev_service: str
    network: str
    created: datetime
    updated: datetime


class ProjectDetailOut(ProjectOut):
    spec: str
    counts: dict[str, int]


class EpicOut(Schema):
    id: int
    key: str
    title: str
    description: str
    priority: int
    position: int
    status: str
    depends_on: list[str]
    task_count: int
    done_count: int

    @staticmethod
    def resolve_depends_on(obj) -> list[str]:
        return [epic.key for epic in obj.depends_on.all()]


class TaskOut(Schema):
    id: int
    key: str
    title: str
    epic: str = Field(alias="epic.key")
    status: str
    priority: int
    domain: str
    complexity: int | None
    estimate_minutes: int
    started_at: datetime | None
    completed_at: datetime | None


class AcceptanceTestOut(Schema):
    id: int
    description: str
    command: str
    result: str
    evidence: str
    last_run_at: datetime | None


class DependencyOut(Schema):
    task: str = Field(alias="task.key")
    depends_on: str = Field(alias="depends_on.key")
    kind: str
    origin: str


class TaskDetailOut(TaskOut):
    description: str
    last_error: str
    tests: list[AcceptanceTestOut]
    depends_on: list[DependencyOut]
    dependents: list[DependencyOut]

    @staticmethod
    def resolve_tests(obj) -> list:
        return list(obj.tests.all())

    @staticmethod
    def resolve_depends_on(obj) -> list:
        return list(obj.dependencies.all())

    @staticmethod
    def resolve_dependents(obj) -> list:
        return list(obj.dependents.all())


class TaskFilter(Schema):
    status: TaskStatus | None = None
    epic: Annotated[str, StringConstraints(pattern=KEY_PATTERN)] | None = None


class DependencyIn(Schema):
    depends_on: Annotated[str, StringConstraints(pattern=KEY_PATTERN)]
    kind: Literal["hard", "soft"] = "hard"


class SuggestionOut(Schema):
    task: str
    depends_on: str
    reason: str


class ImportOut(Schema):
    project: int
    epics: int
    tasks: int
    dependencies: int
    tests: int
    batches: int
    suggestions: list[SuggestionOut]
    applied_suggestions: bool


class NodeOut(Schema):
    key: str
    title: str
    epic: str
    priority: int
    estimate: float


class EdgeOut(Schema):
    task: str
    depends_on: str
    kind: str


class GraphOut(Schema):
    format: Literal["json", "mermaid", "ascii"]
    nodes: list[NodeOut] | None = None
    edges: list[EdgeOut] | None = None
    batches: list[list[str]] | None = None
    content: str | None = None


class BatchOut(Schema):
    number: int
    tasks: list[str]


class CriticalPathOut(Schema):
    tasks: list[str]
    total_minutes: float


class ValidateOut(Schema):
    valid: bool
    tasks: int
    dependencies: int
    batches: int
    cycles: list[list[str]]
    missing: list[list[str]]


class ProjectEventOut(Schema):
    seq: int = Field(description="Sequence number: pass the last one you saw as `after`.")
    kind: EventKind
    created: datetime
    task: str | None = Field(None, description="The task's key, when the event is about a task.")
    session_id: int | None = None
    payload: dict


class ProjectEventsQuery(Schema):
    after: int = Field(0, ge=0, description="Only events with a larger sequence number.")
    limit: int = Field(500, ge=1, le=500)
    kind: list[EventKind] | None = Field(None, description="Only these kinds (repeat the parameter).")
