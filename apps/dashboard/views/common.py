"""What every project page shares: the project (or a 404) for this user, and the header's context."""

from __future__ import annotations

from django.http import Http404, HttpRequest

from apps.core.errors import NotFoundError
from apps.projects import selectors
from apps.projects.models import Project
from apps.projects.permissions import Act, allowed


def project_for(request: HttpRequest, slug: str, *, operate: bool = False) -> Project:
    """The project if this user may see it (or operate it): an unknown or invisible one is a 404, a viewer
    asking to operate gets the 403 of `PermissionDeniedError` (callers turn it into a refusal message)."""
    try:
        return selectors.project_get(user=request.user, project_id=slug, operate=operate)
    except NotFoundError as exc:
        raise Http404(exc.message) from None


def project_context(request: HttpRequest, project: Project, current: str) -> dict:
    """The header every project page shows: the project, the sub-navigation's current tab, may this user act."""
    return {"project": project, "current": current, "can_operate": selectors.can_operate(request.user, project),
            "can_budget": allowed(request.user, project, Act.BUDGET)}

