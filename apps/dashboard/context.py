"""Template context for every page: the jail's state, so the unsafe mode is never silent."""

from __future__ import annotations

from django.http import HttpRequest

from apps.agents.jail import jail_status, unsafe_mode


def jail(request: HttpRequest) -> dict[str, object]:
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    return {"jail_unsafe": unsafe_mode(), "jail_summary": jail_status().summary}
