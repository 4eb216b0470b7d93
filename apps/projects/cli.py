"""Verbs of the `yokeflow` command for projects and plans: new, import-plan, graph, status."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model

from apps.core.errors import NotFoundError, ValidationError
from apps.projects import selectors, services
from apps.projects.graph import CycleError
from apps.projects.models import Task
from apps.projects.plan import plan_import


def register(subparsers: Any) -> None:
    new = subparsers.add_parser("new", help="create a project from a specification file")
    new.add_argument("name")
    new.add_argument("--spec", required=True, help="path of the app specification (text or markdown)")
    new.add_argument("--repo", default="", help="an existing git repository (default: PROJECTS_ROOT/<slug>/repo)")
    new.add_argument("--slug", default=None)
    new.add_argument("--owner", default=None, help="username of the owner (default: the first superuser)")
    new.set_defaults(handler=_new)

    imp = subparsers.add_parser("import-plan", help="import a plan JSON file into a project")
    imp.add_argument("project", help="project slug or id")
    imp.add_argument("file")
    imp.add_argument("--replace", action="store_true", help="replace a plan that has not started")
    imp.add_argument("--apply-suggestions", action="store_true", help="add the inferred dependencies too")
    imp.set_defaults(handler=_import_plan)

    graph = subparsers.add_parser("graph", help="print a project's dependency graph")
    graph.add_argument("project")
    graph.add_argument("--format", choices=["json", "mermaid", "ascii"], default="ascii")
    graph.set_defaults(handler=_graph)

    status = subparsers.add_parser("status", help="print a project's progress")
    status.add_argument("project")
    status.set_defaults(handler=_status)


def _read(path: str, what: str) -> str:
    file = Path(path)
    if not file.is_file():
        raise ValidationError(f"{what} file not found: {path}", code="file_not_found")
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"cannot read {what} file {path}: {exc}", code="file_unreadable") from None


def _owner(username: str | None):
    users = get_user_model().objects
    owner = users.filter(username=username).first() if username else users.filter(is_superuser=True).first()
    if owner is None:
        hint = f"no user named {username!r}" if username else "no superuser exists"
        raise NotFoundError(f"{hint}: pass --owner USERNAME (create one with `manage.py createsuperuser`)")
    return owner


def _new(options: dict[str, Any], out: Any) -> None:
    spec = _read(options["spec"], "spec")
    project = services.project_create(
        owner=_owner(options["owner"]), name=options["name"], slug=options["slug"], spec=spec,
        repo_path=options["repo"],
    )
    out.write(f"created project {project.slug} (id {project.pk}), repository {project.repo_path}")


def _import_plan(options: dict[str, Any], out: Any) -> None:
    project = selectors.project_find(options["project"])
    result = plan_import(project=project, data=_read(options["file"], "plan"), replace=options["replace"],
                         apply_suggestions=options["apply_suggestions"])
    out.write(f"imported {result.epics} epics, {result.tasks} tasks, {result.dependencies} dependencies, "
              f"{result.tests} acceptance tests into {project.slug}")
    verb = "added" if result.applied_suggestions else "suggested (re-run with --replace --apply-suggestions to add)"
    for s in result.suggestions:
        out.write(f"  {verb}: {s.task} depends on {s.depends_on} ({s.reason})")


def _graph(options: dict[str, Any], out: Any) -> None:
    graph = selectors.project_graph(selectors.project_find(options["project"]))
    if options["format"] == "mermaid":
        out.write(graph.to_mermaid())
    elif options["format"] == "json":
        out.write(json.dumps(selectors.graph_as_dict(graph), indent=2))
    else:
        out.write(graph.to_ascii())


def _status(options: dict[str, Any], out: Any) -> None:
    project = selectors.project_find(options["project"])
    counts = selectors.project_counts(project)
    out.write(f"{project.name} ({project.slug}) · {project.status} · {counts['total']} tasks")
    out.write("  " + "  ".join(f"{s}: {counts[s]}" for s in Task.Status.values if counts[s]))
    for epic in selectors.epics_list(project):
        out.write(f"  {epic.key:<8} {epic.done_count}/{epic.task_count} done  {epic.title}")
    graph = selectors.project_graph(project)
    out.write(f"  {len(graph.batches())} batches")
    try:
        path, minutes = graph.critical_path()
        out.write(f"  critical path ({minutes:.0f} min): {' -> '.join(path)}")
    except CycleError as exc:
        out.write(f"  dependency cycles: {exc.cycles}")
