"""Reads of the plan: who may see what, lists with their joins done, the dependency graph."""

from __future__ import annotations

import re

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, Q, QuerySet

from apps.core.errors import NotFoundError
from apps.core.validation import as_id
from apps.projects.graph import DependencyGraph, Edge, Node
from apps.projects.models import KEY_RE, SLUG_RE, Epic, Project, Task, TaskDependency
from apps.projects.permissions import Act, allowed, permission_require

User = AbstractBaseUser | AnonymousUser


def projects_visible_to(user: User) -> QuerySet[Project]:
    """Staff see every project; everyone else the ones they own or are a member of."""
    projects = Project.objects.select_related("owner")
    if not user.is_authenticated:
        return projects.none()
    if user.is_staff:
        return projects.all()
    return projects.filter(Q(owner=user) | Q(memberships__user=user)).distinct()


def can_operate(user: User, project: Project) -> bool:
    return allowed(user, project, Act.OPERATE)


def _by_key_or_id(rows: QuerySet, field: str, shape: re.Pattern[str], ref: str):
    """The row whose `field` is `ref`, else the row whose id is `ref`; a ref of neither shape finds nothing.

    Keys win over ids so that a plan with numeric task keys ("1", "2") still resolves by key.
    """
    found = rows.filter(**{field: ref}).first() if shape.match(ref) else None
    if found is None and (pk := as_id(ref)) is not None:
        found = rows.filter(pk=pk).first()
    return found


def project_find(project_id: int | str, rows: QuerySet[Project] | None = None) -> Project:
    """The project by slug or id among `rows` (all projects: the command line acts as the operator)."""
    rows = Project.objects.select_related("owner") if rows is None else rows
    project = _by_key_or_id(rows, "slug", SLUG_RE, str(project_id))
    if project is None:
        raise NotFoundError(f"project {str(project_id)!r} not found", code="project_not_found")
    return project


def project_get(*, user: User, project_id: int | str, operate: bool = False, act: Act | None = None) -> Project:
    """The project by slug or id if `user` may see it, and may do `act` to it (`operate`: Act.OPERATE).

    A project the user cannot see is reported as not found, so its existence does not leak.
    """
    project = project_find(project_id, projects_visible_to(user))
    act = act or (Act.OPERATE if operate else None)
    if act is not None:
        permission_require(user, project, act)
    return project


def projects_with_counts(user: User) -> QuerySet[Project]:
    """Visible projects with task totals annotated in the same query (no query per project)."""
    return projects_visible_to(user).annotate(
        total_tasks=Count("tasks", distinct=True),
        done_tasks=Count("tasks", filter=Q(tasks__status=Task.Status.DONE), distinct=True),
        running_tasks=Count("tasks", filter=Q(tasks__status=Task.Status.RUNNING), distinct=True),
    )


def project_counts(project: Project) -> dict[str, int]:
    rows = Task.objects.filter(project=project).values("status").annotate(n=Count("id"))
    counts = {status: 0 for status in Task.Status.values}
    counts.update({row["status"]: row["n"] for row in rows})
    counts["total"] = sum(counts[s] for s in Task.Status.values)
    return counts


def epics_list(project: Project) -> QuerySet[Epic]:
    return (
        Epic.objects.filter(project=project)
        .annotate(
            task_count=Count("tasks", distinct=True),
            done_count=Count("tasks", filter=Q(tasks__status=Task.Status.DONE), distinct=True),
        )
        .prefetch_related("depends_on")
        .order_by("position")
    )


def tasks_list(project: Project, *, status: str | None = None, epic: str | None = None) -> QuerySet[Task]:
    tasks = Task.objects.filter(project=project).select_related("epic").order_by("position")
    if status:
        tasks = tasks.filter(status=status)
    if epic:
        by_key = Q(epic__key=epic)
        pk = as_id(epic)
        tasks = tasks.filter(by_key if pk is None else by_key | Q(epic_id=pk))
    return tasks


def task_get(project: Project, task_id: int | str) -> Task:
    tasks = (
        Task.objects.filter(project=project)
        .select_related("epic")
        .prefetch_related("tests", "dependencies__depends_on", "dependents__task")
    )
    task = _by_key_or_id(tasks, "key", KEY_RE, str(task_id))
    if task is None:
        raise NotFoundError(f"task {task_id} not found in project {project.slug!r}", code="task_not_found")
    return task


def project_graph(project: Project) -> DependencyGraph:
    """The project's dependency graph from three flat queries (no per-task queries)."""
    epic_keys = dict(Epic.objects.filter(project=project).values_list("pk", "key"))
    rows = Task.objects.filter(project=project).order_by("position").values_list(
        "pk", "key", "priority", "estimate_minutes", "epic_id", "title"
    )
    keys: dict[int, str] = {}
    nodes = []
    for pk, key, priority, estimate, epic_id, title in rows:
        keys[pk] = key
        nodes.append(Node(key, priority, float(estimate), epic_keys.get(epic_id, ""), title))
    deps = TaskDependency.objects.filter(task__project=project).values_list("task_id", "depends_on_id", "kind")
    edges = [Edge(keys[t], keys[d], kind) for t, d, kind in deps if t in keys and d in keys]
    return DependencyGraph(nodes, edges)


def graph_as_dict(graph: DependencyGraph) -> dict:
    """The JSON view of a graph shared by the API and the command line."""
    nodes = [{"key": n.key, "title": n.title, "epic": n.group, "priority": n.priority, "estimate": n.estimate}
             for n in graph.nodes.values()]
    edges = [{"task": e.task, "depends_on": e.depends_on, "kind": e.kind} for e in graph.edges]
    return {"nodes": nodes, "edges": edges, "batches": graph.batches()}


def task_statuses(project: Project) -> dict[str, str]:
    """Every task's status by key, in one flat query (the graph page's pills and batch list need one per task)."""
    return dict(Task.objects.filter(project=project).values_list("key", "status"))
