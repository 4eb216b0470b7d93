"""Writes to the plan: projects, membership, task status moves and dependencies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django.utils.text import slugify

from apps.core import metrics
from apps.core.audit import audit_record
from apps.core.errors import ConflictError, PermissionDeniedError, ValidationError
from apps.core.models import AuditAction
from apps.core.redaction import redact
from apps.core.transitions import status_move, transition_check
from apps.projects.events import event_emit, task_event, tasks_event
from apps.projects.graph import DependencyGraph, Edge
from apps.projects.models import (
    RESERVED_SLUGS,
    Epic,
    EventKind,
    Project,
    ProjectMembership,
    Task,
    TaskDependency,
)
from apps.projects.permissions import Act, acts_for_fields, permission_require
from apps.projects.selectors import project_graph, task_get
from apps.projects.transitions import EPIC_TRANSITIONS, PROJECT_TRANSITIONS, TASK_TRANSITIONS

EDITABLE_PROJECT_FIELDS = frozenset(
    {"name", "spec", "default_branch", "parallel_enabled", "max_concurrency", "strategy", "merge_strategy",
     "budget_usd", "session_time_limit", "model_overrides", "env_files", "setup_command", "dev_service", "network"}
)


def _field_errors(exc: DjangoValidationError) -> ValidationError:
    fields = {name: [str(m) for m in messages] for name, messages in exc.message_dict.items()}
    summary = "; ".join(f"{name}: {' '.join(messages)}" for name, messages in fields.items())
    return ValidationError(summary, code="invalid_fields", details={"fields": fields})


def _save_validated(project: Project) -> Project:
    try:
        project.full_clean()
    except DjangoValidationError as exc:
        raise _field_errors(exc) from None
    try:
        with transaction.atomic():
            project.save()
    except IntegrityError as exc:  # a concurrent create won the slug between the check and the insert
        raise ConflictError(f"project could not be saved: {exc}", code="project_conflict") from None
    return project


def _slug_for(name: str, slug: str | None) -> str:
    slug = (slug or slugify(name)[:63].strip("-")).strip()
    if not slug:
        raise ValidationError("slug: cannot derive a slug from this name; give one", code="invalid_fields",
                              details={"fields": {"slug": ["required"]}})
    if slug in RESERVED_SLUGS:
        raise ValidationError(f"slug: {slug!r} is reserved", code="invalid_fields",
                              details={"fields": {"slug": [f"{slug!r} is reserved"]}})
    if Project.objects.filter(slug=slug).exists():
        raise ConflictError(f"a project with slug {slug!r} already exists", code="slug_taken", recoverable=False)
    return slug


def _checked_repo_path(repo_path: str) -> str:
    if not repo_path:
        return ""
    path = Path(repo_path).expanduser().resolve()
    if not (path / ".git").exists() and not (path / "HEAD").is_file():
        raise ValidationError(f"repo_path: {path} is not a git repository", code="invalid_fields",
                              details={"fields": {"repo_path": ["not a git repository"]}})
    return str(path)


def project_create(
    *, owner: AbstractBaseUser, name: str, slug: str | None = None, spec: str = "", repo_path: str = "",
    **options: Any,
) -> Project:
    unknown = set(options) - EDITABLE_PROJECT_FIELDS
    if unknown:
        raise ValidationError(f"unknown project fields: {', '.join(sorted(unknown))}", code="invalid_fields")
    if options.get("network") == "open" and not owner.is_staff:
        raise PermissionDeniedError("only staff may give a project the open network mode",
                                    details={"fields": ["network"]})
    if repo_path and not owner.is_staff:
        # Agents read, write and commit in that repository: only staff may point a project at one on disk.
        raise PermissionDeniedError("repo_path: only staff may use an existing repository; leave it empty and "
                                    "YokeFlow creates one under PROJECTS_ROOT", code="repo_path_forbidden")
    slug = _slug_for(name, slug)
    project = Project(owner=owner, name=name.strip(), slug=slug, spec=spec, **options)
    project.repo_path = _checked_repo_path(repo_path) or str(Path(settings.PROJECTS_ROOT) / slug / "repo")
    with transaction.atomic():
        project = _save_validated(project)
        audit_record(action=AuditAction.PROJECT_CREATED, target=f"project {project.slug}", project=project,
                     actor=owner.get_username(), details={"name": project.name})
    return project


def project_update(*, project: Project, by: AbstractBaseUser | None = None, **fields: Any) -> Project:
    """Change settings of `project`; `by` (None: a trusted caller such as a command) must be allowed each field."""
    unknown = set(fields) - EDITABLE_PROJECT_FIELDS
    if unknown:
        raise ValidationError(f"fields cannot be changed: {', '.join(sorted(unknown))}", code="invalid_fields")
    if by is not None:
        _check_settings_permission(project, by, fields)
    before = {name: getattr(project, name) for name in fields}
    for name, value in fields.items():
        setattr(project, name, value)
    with transaction.atomic():
        project = _save_validated(project)
        changed = {name: [old, getattr(project, name)] for name, old in before.items()
                   if old != getattr(project, name)}
        if changed:  # a PATCH that repeats the current values changed nothing worth a line in the log
            audit_record(action=AuditAction.SETTINGS_CHANGED, target=f"project {project.slug}", project=project,
                         details=changed)
    return project


def _check_settings_permission(project: Project, by: AbstractBaseUser, fields: dict[str, Any]) -> None:
    """Each changed field needs its act (permissions.ROLE_ACTS); the open network is staff's alone."""
    changed = {name for name, value in fields.items() if getattr(project, name) != value}
    for act, names in acts_for_fields(changed).items():
        permission_require(by, project, act, fields=names)
    if fields.get("network") == "open" and "network" in changed and not by.is_staff:
        raise PermissionDeniedError("only staff may give a project the open network mode",
                                    details={"fields": ["network"]})


def project_delete(*, project: Project, by: AbstractBaseUser) -> None:
    permission_require(by, project, Act.DELETE)
    if project.tasks.filter(status__in=[Task.Status.RUNNING, Task.Status.MERGING]).exists():
        raise ConflictError(f"project {project.slug!r} has running tasks; cancel the run first",
                            code="project_running", recoverable=True)
    audit_record(action=AuditAction.PROJECT_DELETED, target=f"project {project.slug}", project=project,
                 actor=by.get_username())
    project.delete()


def membership_set(*, project: Project, user: AbstractBaseUser, role: str | None,
                   by: AbstractBaseUser | None = None) -> ProjectMembership | None:
    """Give `user` a role on `project`, change it, or (role=None) remove them; `by` (None: a command) must be
    allowed to change the members. Every change is in the audit log."""
    if by is not None:
        permission_require(by, project, Act.MEMBERS)
    before = ProjectMembership.objects.filter(project=project, user=user).values_list("role", flat=True).first()
    if before != role:
        audit_record(action=AuditAction.MEMBERSHIP_CHANGED, target=f"project {project.slug}", project=project,
                     actor=by.get_username() if by is not None else "",
                     details={"user": user.get_username(), "role": [before, role]})
    if role is None:
        ProjectMembership.objects.filter(project=project, user=user).delete()
        return None
    if role not in ProjectMembership.Role.values:
        raise ValidationError(f"role must be one of {', '.join(ProjectMembership.Role.values)}", code="invalid_role")
    membership, _ = ProjectMembership.objects.update_or_create(project=project, user=user,
                                                               defaults={"role": role})
    return membership


# ---------------------------------------------------------------- project run status, epic status


def project_status_move(*, project: Project, to: str) -> bool:
    """Move the project's run status (PROJECT_TRANSITIONS); True when it changed. Every writer of the run
    status — run start and cancel, the scheduler, planning, a pause — goes through here."""
    previous = status_move(project, to, PROJECT_TRANSITIONS, noun="project")
    if previous is None:
        return False
    event_emit(project_id=project.pk, kind=EventKind.RUN_STATUS, status=to, previous=previous)
    return True


def epic_status_move(*, epic: Epic, to: str) -> bool:
    """Move the epic (EPIC_TRANSITIONS); True when it changed, False when it was there already."""
    return status_move(epic, to, EPIC_TRANSITIONS, noun="epic") is not None


# ---------------------------------------------------------------- task status


def task_check_transition(current: str, target: str) -> None:
    transition_check(TASK_TRANSITIONS, current, target, noun="task", stay=False)


def task_transition(*, task: Task, to: str, error: str | None = None) -> Task:
    """Move `task` to status `to` if the table allows it and nobody moved it meanwhile.

    The update is conditional on the status we read, so two workers racing for the same move cannot
    both succeed: the loser gets a ConflictError and re-reads.
    """
    task_check_transition(task.status, to)
    now = timezone.now()
    changes: dict[str, Any] = {"status": to, "updated": now}
    if to == Task.Status.RUNNING and task.started_at is None:
        changes["started_at"] = now
    if to == Task.Status.DONE:
        changes["completed_at"] = now
    if error is not None or to == Task.Status.FAILED:  # error="" clears the last one
        changes["last_error"] = redact(error or "")
    if Task.objects.filter(pk=task.pk, status=task.status).update(**changes) != 1:
        raise ConflictError(f"task {task.key} changed while moving it to {to}; reload and retry",
                            code="task_changed")
    previous = task.status
    for name, value in changes.items():
        setattr(task, name, value)
    task_event(task, previous)
    if to == Task.Status.DONE and task.started_at:
        metrics.observe_task_done((now - task.started_at).total_seconds())
    return task


def tasks_refresh_ready(*, project: Project) -> int:
    """Mark pending tasks whose hard dependencies are all done as ready; returns how many moved."""
    assert Task.Status.READY in TASK_TRANSITIONS[Task.Status.PENDING]
    unmet = TaskDependency.objects.filter(
        task=OuterRef("pk"), kind=TaskDependency.Kind.HARD
    ).exclude(depends_on__status=Task.Status.DONE)
    pending = Task.objects.filter(project=project, status=Task.Status.PENDING)
    ready = dict(pending.exclude(Exists(unmet)).values_list("pk", "key"))
    if not ready:
        return 0
    moved = pending.filter(pk__in=list(ready)).update(status=Task.Status.READY, updated=timezone.now())
    tasks_event(project.pk, ready.values(), Task.Status.READY, Task.Status.PENDING)
    return moved


# ---------------------------------------------------------------- dependencies


@transaction.atomic
def dependency_add(*, project: Project, task: Task, depends_on: str, kind: str = "hard") -> TaskDependency:
    """Add `task` → `depends_on` (a key or id) unless it is unknown, a duplicate or would close a cycle."""
    if kind not in TaskDependency.Kind.values:
        raise ValidationError("kind must be hard or soft", code="invalid_kind", details={"fields": {"kind": [kind]}})
    Project.objects.select_for_update().filter(pk=project.pk).first()  # serialise graph edits per project
    target = task_get(project, depends_on)
    if target.pk == task.pk:
        raise ValidationError(f"task {task.key} cannot depend on itself", code="self_dependency")
    if TaskDependency.objects.filter(task=task, depends_on=target).exists():
        raise ConflictError(f"{task.key} already depends on {target.key}", code="dependency_exists",
                            recoverable=False)
    _refuse_cycle(project, task, target, kind)
    dependency = TaskDependency.objects.create(task=task, depends_on=target, kind=kind,
                                               origin=TaskDependency.Origin.MANUAL)
    _requeue_if_blocked_by(task, target, kind)
    return dependency


def _refuse_cycle(project: Project, task: Task, target: Task, kind: str) -> None:
    graph = project_graph(project)
    graph = DependencyGraph(graph.nodes.values(), [*graph.edges, Edge(task.key, target.key, kind)])
    if cycles := graph.cycles():
        members = ", ".join(cycles[0])
        raise ValidationError(f"{task.key} → {target.key} would create a cycle: {members}", code="cycle",
                              details={"cycle": cycles[0]})


def _requeue_if_blocked_by(task: Task, target: Task, kind: str) -> None:
    # A ready task that just gained an unfinished hard prerequisite must wait for it again.
    if kind == TaskDependency.Kind.HARD and task.status == Task.Status.READY and target.status != Task.Status.DONE:
        task_transition(task=task, to=Task.Status.PENDING)
