"""The audit log: who did what, when and from where, for the actions people answer for.

Services call `audit_record` at the end of their successful path (inside their transaction, so an action that
rolls back leaves no event). The actor is the caller's `by` when it has one, else the current work context's
actor; origin and correlation id always come from the context, so an event links to the request, job or command
that caused it. `details` never holds a secret: values under secret-looking keys are masked before writing.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Model, Q, QuerySet

from apps.core.context import current
from apps.core.errors import ValidationError
from apps.core.models import AuditAction, AuditEvent

# A key containing any of these names a credential: its value is replaced, whatever it holds.
SECRET_MARKERS = ("token", "password", "secret", "key", "webhook_url", "auth")
MASK = "***"
# The log records decisions, not documents: a long text (a spec, notes) is cut to this many characters.
MAX_TEXT = 500
TOKEN_ACTIONS = (AuditAction.TOKEN_CREATED, AuditAction.TOKEN_USED)


def audit_record(*, action: str, target: str = "", project: Model | int | None = None, actor: str = "",
                 details: dict[str, Any] | None = None) -> AuditEvent:
    """Append one event. `actor` (an explicit `by`) wins over the context's actor; "system" when nobody is known."""
    action_checked(action)
    context = current()
    return AuditEvent.objects.create(
        actor=(actor or context.actor or "system")[:150], action=action, target=target[:MAX_TEXT],
        project_id=_project_id(project), project_label=str(getattr(project, "slug", ""))[:63],
        origin=context.origin[:200], correlation_id=context.correlation_id[:64], details=masked(details or {}))


def action_checked(action: str) -> str:
    if action not in AuditAction.values:
        raise ValidationError(f"action: {action!r} is not one of {', '.join(AuditAction.values)}",
                              code="invalid_fields", details={"fields": {"action": ["unknown action"]}})
    return action


def _project_id(project: Model | int | None) -> int | None:
    return project.pk if isinstance(project, Model) else project


def _looks_secret(key: str) -> bool:
    lowered = key.lower()
    return any(marker in lowered for marker in SECRET_MARKERS)


def masked(value: Any) -> Any:
    """`value` made JSON-safe, with every secret-looking key's value replaced by MASK (at any depth)."""
    if isinstance(value, dict):
        return {str(k): MASK if _looks_secret(str(k)) else masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [masked(item) for item in value]
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or infinity
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)[:MAX_TEXT]  # Decimal (money stays exact as text), a model row, a path…


def audit_list(*, user: AbstractBaseUser | AnonymousUser, project: Model | int | str | None = None,
               action: str | None = None, since: dt.datetime | None = None, limit: int = 100) -> QuerySet[AuditEvent]:
    """The newest events `user` may read: staff all; others those of projects they see and their own tokens'."""
    if limit < 1:
        raise ValidationError("limit: give a positive number of events", code="invalid_fields",
                              details={"fields": {"limit": ["must be at least 1"]}})
    events = _readable_by(user)
    if isinstance(project, str):  # a slug (or an id given as text), e.g. from the command line
        by_text = Q(project_label=project)
        events = events.filter(by_text | Q(project_id=int(project)) if project.isdigit() else by_text)
    elif project is not None:
        events = events.filter(project_id=_project_id(project))
    if action:
        events = events.filter(action=action_checked(action))
    if since is not None:
        events = events.filter(created__gte=since)
    return events.order_by("-created", "-pk")[:limit]


# The projects a user may see, as a query of their ids: registered by the projects app (core imports no app).
VisibleProjects = Callable[[AbstractBaseUser], QuerySet]
_visible_projects: list[VisibleProjects] = []


def visible_projects_register(selector: VisibleProjects) -> None:
    _visible_projects[:] = [selector]


def _readable_by(user: AbstractBaseUser | AnonymousUser) -> QuerySet[AuditEvent]:
    if not user.is_authenticated:
        return AuditEvent.objects.none()
    if user.is_staff:
        return AuditEvent.objects.all()
    own_tokens = Q(action__in=TOKEN_ACTIONS, actor=user.get_username())
    if not _visible_projects:
        return AuditEvent.objects.filter(own_tokens)
    return AuditEvent.objects.filter(Q(project_id__in=_visible_projects[0](user)) | own_tokens)
