"""Plan files: the pydantic schema, the checks that refuse a bad plan, and the import service.

A plan is JSON (written by a person or by the planning session):

    {"epics": [{"key": "E1", "title": "Storage", "depends_on": [],
                "tasks": [{"key": "T1", "title": "…", "depends_on": ["T0"], "dependency_type": "hard",
                           "domain": "database", "estimate_minutes": 15,
                           "tests": [{"description": "…", "command": "pytest -q"}]}]}]}

`plan_import` checks everything first and reports every problem at once (duplicate, unknown and
self-referencing keys, cycles with their members); only a clean plan is written, in one transaction.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import pydantic
from django.db import transaction
from pydantic import ConfigDict, Field, StringConstraints

from apps.core.audit import audit_record
from apps.core.errors import ConflictError, ValidationError
from apps.core.models import AuditAction
from apps.core.validation import Text
from apps.projects.graph import DependencyGraph, Edge, Node
from apps.projects.models import (
    KEY_PATTERN,
    AcceptanceTest,
    Domain,
    Epic,
    Project,
    Task,
    TaskDependency,
)
from apps.projects.services import project_status_move, tasks_refresh_ready

Key = Annotated[str, StringConstraints(pattern=KEY_PATTERN)]
Title = Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
_STARTED = (Task.Status.RUNNING, Task.Status.MERGING, Task.Status.DONE, Task.Status.PAUSED)


class _Strict(pydantic.BaseModel):
    # Unknown fields are refused: a typo such as "depends-on" must not silently drop dependencies.
    model_config = ConfigDict(extra="forbid")


class TestSpec(_Strict):
    description: Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
    command: Annotated[Text, StringConstraints(strip_whitespace=True, max_length=2000)] = ""


class TaskSpec(_Strict):
    key: Key
    title: Title
    description: Text = Field(default="", max_length=20_000)
    priority: int = Field(default=0, ge=-1000, le=1000)
    depends_on: list[Key] = Field(default_factory=list)
    dependency_type: Literal["hard", "soft"] = "hard"
    domain: Domain = Domain.GENERAL
    complexity: int | None = Field(default=None, ge=1, le=10)
    estimate_minutes: int = Field(default=15, ge=1, le=10_080)
    tests: list[TestSpec] = Field(default_factory=list)


class EpicSpec(_Strict):
    key: Key
    title: Title
    description: Text = Field(default="", max_length=20_000)
    priority: int = Field(default=0, ge=-1000, le=1000)
    depends_on: list[Key] = Field(default_factory=list)
    tasks: list[TaskSpec] = Field(default_factory=list)


class PlanSpec(_Strict):
    epics: list[EpicSpec] = Field(min_length=1)

    def tasks(self) -> list[tuple[EpicSpec, TaskSpec]]:
        return [(epic, task) for epic in self.epics for task in epic.tasks]


@dataclass(frozen=True)
class Problem:
    code: str
    message: str
    keys: list[str]


@dataclass(frozen=True)
class Suggestion:
    task: str
    depends_on: str
    reason: str


@dataclass
class ImportResult:
    project: Project
    epics: int = 0
    tasks: int = 0
    dependencies: int = 0
    tests: int = 0
    suggestions: list[Suggestion] = field(default_factory=list)
    applied_suggestions: bool = False


class PlanValidationError(ValidationError):
    code = "invalid_plan"

    def __init__(self, problems: list[Problem]) -> None:
        summary = "; ".join(p.message for p in problems)
        super().__init__(
            f"plan refused ({len(problems)} problem{'s' if len(problems) != 1 else ''}): {summary}",
            details={"problems": [p.__dict__ for p in problems]},
        )
        self.problems = problems


# ---------------------------------------------------------------- parsing


def plan_parse(data: str | bytes | dict[str, Any]) -> PlanSpec:
    """Parse JSON text or a dict into a PlanSpec; schema errors become one ValidationError."""
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"plan is not valid JSON: {exc}", code="invalid_json") from None
    try:
        return PlanSpec.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = [
            Problem("schema", f"{'.'.join(str(p) for p in err['loc']) or 'plan'}: {err['msg']}", [])
            for err in exc.errors()
        ]
        raise PlanValidationError(problems) from None


# ---------------------------------------------------------------- checks


def _duplicates(keys: list[str]) -> list[str]:
    seen: set[str] = set()
    return sorted({k for k in keys if k in seen or seen.add(k)})


def _key_problems(plan: PlanSpec) -> list[Problem]:
    problems = []
    epic_keys = [e.key for e in plan.epics]
    task_keys = [t.key for _, t in plan.tasks()]
    if dup := _duplicates(epic_keys):
        problems.append(Problem("duplicate_epic_key", f"duplicate epic keys: {', '.join(dup)}", dup))
    if dup := _duplicates(task_keys):
        problems.append(Problem("duplicate_task_key", f"duplicate task keys: {', '.join(dup)}", dup))
    problems += _reference_problems("epic", [(e.key, e.depends_on) for e in plan.epics], set(epic_keys))
    problems += _reference_problems("task", [(t.key, t.depends_on) for _, t in plan.tasks()], set(task_keys))
    return problems


def _reference_problems(kind: str, refs: list[tuple[str, list[str]]], known: set[str]) -> list[Problem]:
    unknown = sorted({f"{key}→{dep}" for key, deps in refs for dep in deps if dep not in known})
    selfs = sorted({key for key, deps in refs if key in deps})
    problems = []
    if unknown:
        problems.append(Problem(f"unknown_{kind}_dependency", f"unknown {kind} dependencies: {', '.join(unknown)}",
                                unknown))
    if selfs:
        problems.append(Problem(f"self_{kind}_dependency", f"{kind}s depending on themselves: {', '.join(selfs)}",
                                selfs))
    return problems


def _cycle_problems(kind: str, graph: DependencyGraph) -> list[Problem]:
    return [
        Problem(f"{kind}_cycle", f"{kind} dependency cycle between {', '.join(members)}", list(members))
        for members in graph.cycles()
        if len(members) > 1  # self-loops were already reported with a clearer message
    ]


def plan_task_edges(plan: PlanSpec) -> dict[tuple[str, str], tuple[str, str]]:
    """Every task-level edge (task, depends_on) → (kind, origin); epic dependencies are expanded."""
    edges: dict[tuple[str, str], tuple[str, str]] = {}
    tasks_of = {e.key: [t.key for t in e.tasks] for e in plan.epics}
    for epic in plan.epics:
        for dep_epic in epic.depends_on:
            for task in tasks_of[epic.key]:
                for dep in tasks_of.get(dep_epic, []):
                    edges[(task, dep)] = ("hard", TaskDependency.Origin.EPIC)
    for _, task in plan.tasks():
        for dep in task.depends_on:
            edges[(task.key, dep)] = (task.dependency_type, TaskDependency.Origin.PLAN)  # declared wins
    return edges


def plan_graph(plan: PlanSpec) -> DependencyGraph:
    nodes = [Node(t.key, t.priority, float(t.estimate_minutes), e.key, t.title) for e, t in plan.tasks()]
    edges = [Edge(task, dep, kind) for (task, dep), (kind, _) in plan_task_edges(plan).items() if task != dep]
    return DependencyGraph(nodes, edges)


def plan_check(plan: PlanSpec) -> list[Problem]:
    """Every reason to refuse this plan (empty when it is sound)."""
    problems = _key_problems(plan)
    if problems:
        return problems  # cycles are meaningless while keys are ambiguous or dangling
    epic_graph = DependencyGraph(
        [Node(e.key) for e in plan.epics], [Edge(e.key, d) for e in plan.epics for d in e.depends_on]
    )
    problems = _cycle_problems("epic", epic_graph)
    return problems or _cycle_problems("task", plan_graph(plan))


# ---------------------------------------------------------------- inference

# The heuristic: inside one epic, work usually flows schema/model → API → UI. A task of a later layer
# that does not already (transitively) depend on any task of the layer before it probably should.
_LAYERS: list[tuple[str, set[str], re.Pattern[str]]] = [
    ("schema/model", {Domain.DATABASE},
     re.compile(r"\b(schema|models?|migrations?|database|tables?|entit(y|ies))\b", re.I)),
    ("API", {Domain.API}, re.compile(r"\b(api|endpoints?|routes?|serializers?|rest|graphql)\b", re.I)),
    ("UI", {Domain.FRONTEND},
     re.compile(r"\b(ui|pages?|frontend|components?|screens?|forms?|views?|dashboards?)\b", re.I)),
]
INFERENCE_TASK_LIMIT = 5_000  # the reachability checks are quadratic per epic; skip on giant plans


def _layer(task: TaskSpec) -> int | None:
    for index, (_, domains, _) in enumerate(_LAYERS):
        if task.domain in domains:
            return index
    text = f"{task.title} {task.key}"
    for index, (_, _, pattern) in enumerate(_LAYERS):
        if pattern.search(text):
            return index
    return None


def _ancestors(start: str, deps: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    stack = list(deps.get(start, ()))
    while stack:
        key = stack.pop()
        if key not in seen:
            seen.add(key)
            stack.extend(deps.get(key, ()))
    return seen


def plan_suggest_dependencies(plan: PlanSpec) -> list[Suggestion]:
    """Likely missing dependencies by the layer heuristic; reported to the user, applied only on request."""
    if len(plan.tasks()) > INFERENCE_TASK_LIMIT:
        return []
    deps: dict[str, set[str]] = defaultdict(set)
    for task, dep in plan_task_edges(plan):
        deps[task].add(dep)
    suggestions = []
    for epic in plan.epics:
        by_layer: dict[int, list[str]] = defaultdict(list)
        for task in epic.tasks:
            if (layer := _layer(task)) is not None:
                by_layer[layer].append(task.key)
        suggestions += _suggest_in_epic(by_layer, deps)
    return suggestions


def _suggest_in_epic(by_layer: dict[int, list[str]], deps: dict[str, set[str]]) -> list[Suggestion]:
    suggestions = []
    for layer in sorted(by_layer):
        earlier = [lay for lay in by_layer if lay < layer]
        if not earlier:
            continue
        previous = by_layer[max(earlier)]
        reason = f"{_LAYERS[max(earlier)][0]} before {_LAYERS[layer][0]}"
        for task in by_layer[layer]:
            ancestors = _ancestors(task, deps)
            if ancestors.intersection(previous):
                continue
            for candidate in previous:
                if task not in _ancestors(candidate, deps):  # never suggest a cycle
                    suggestions.append(Suggestion(task, candidate, reason))
    return suggestions


# ---------------------------------------------------------------- import


def plan_import(
    *,
    project: Project,
    data: str | bytes | dict[str, Any] | PlanSpec,
    replace: bool = False,
    apply_suggestions: bool = False,
) -> ImportResult:
    """Validate `data` completely, then write the whole plan in one transaction (or nothing)."""
    plan = data if isinstance(data, PlanSpec) else plan_parse(data)
    if problems := plan_check(plan):
        raise PlanValidationError(problems)
    suggestions = plan_suggest_dependencies(plan)
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        _clear_existing_plan(locked, replace=replace)
        result = _write_plan(locked, plan, suggestions if apply_suggestions else [])
        audit_record(action=AuditAction.PLAN_IMPORTED, target=f"project {locked.slug}", project=locked,
                     details={"epics": result.epics, "tasks": result.tasks, "dependencies": result.dependencies,
                              "replace": replace})
    result.suggestions = suggestions
    result.applied_suggestions = apply_suggestions and bool(suggestions)
    project.refresh_from_db()
    return result


def _clear_existing_plan(project: Project, *, replace: bool) -> None:
    task_count = project.tasks.count()
    if not task_count and not project.epics.exists():
        return
    if not replace:
        raise ConflictError(
            f"project {project.slug!r} already has a plan ({task_count} tasks); "
            "import with replace to overwrite it",
            code="plan_exists",
            recoverable=False,
        )
    started = list(project.tasks.filter(status__in=_STARTED).values_list("key", flat=True)[:20])
    if started:
        raise ConflictError(
            f"cannot replace a plan whose tasks have started: {', '.join(started)}",
            code="plan_started",
            recoverable=False,
            details={"keys": started},
        )
    project.epics.all().delete()  # cascades to tasks, dependencies and tests


def _write_plan(project: Project, plan: PlanSpec, extra: list[Suggestion]) -> ImportResult:
    epics = Epic.objects.bulk_create(
        Epic(project=project, key=e.key, title=e.title, description=e.description, priority=e.priority,
             position=i)
        for i, e in enumerate(plan.epics)
    )
    epic_ids = {e.key: e.pk for e in epics}
    _write_epic_links(plan, epic_ids)
    tasks = Task.objects.bulk_create(_task_rows(project, plan, epic_ids))
    task_ids = {t.key: t.pk for t in tasks}
    deps = _dependency_rows(plan, task_ids, extra)
    TaskDependency.objects.bulk_create(deps, batch_size=2000)
    tests = AcceptanceTest.objects.bulk_create(
        (AcceptanceTest(task_id=task_ids[t.key], position=i, description=s.description, command=s.command)
         for _, t in plan.tasks() for i, s in enumerate(t.tests)),
        batch_size=2000,
    )
    tasks_refresh_ready(project=project)
    if project.status == Project.Status.DRAFT:
        project_status_move(project=project, to=Project.Status.PLANNED)
    return ImportResult(project, epics=len(epics), tasks=len(tasks), dependencies=len(deps), tests=len(tests))


def _write_epic_links(plan: PlanSpec, epic_ids: dict[str, int]) -> None:
    link = Epic.depends_on.through
    link.objects.bulk_create(
        link(from_epic_id=epic_ids[e.key], to_epic_id=epic_ids[d]) for e in plan.epics for d in e.depends_on
    )


def _task_rows(project: Project, plan: PlanSpec, epic_ids: dict[str, int]):
    for position, (epic, t) in enumerate(plan.tasks()):
        yield Task(
            project=project, epic_id=epic_ids[epic.key], key=t.key, title=t.title, description=t.description,
            priority=t.priority, position=position, domain=t.domain, complexity=t.complexity,
            estimate_minutes=t.estimate_minutes,
        )


def _dependency_rows(plan: PlanSpec, task_ids: dict[str, int], extra: list[Suggestion]) -> list[TaskDependency]:
    edges = plan_task_edges(plan)
    for s in extra:
        edges.setdefault((s.task, s.depends_on), ("hard", TaskDependency.Origin.INFERRED))
    return [
        TaskDependency(task_id=task_ids[task], depends_on_id=task_ids[dep], kind=kind, origin=origin)
        for (task, dep), (kind, origin) in edges.items()
    ]
