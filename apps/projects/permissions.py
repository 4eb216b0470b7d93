"""Who may do what to a project: one table of roles (`ROLE_ACTS`) and one function every door asks — pages, API
and admin call `permission_require` (through the selectors' `project_get(act=…)` or directly in a service).

Roles: **viewer** and **operator** are memberships; **owner** is the project's owner; **staff** are Django staff.
Someone with no role does not see the project at all (selectors answer "not found"). Commands run by whoever
operates the host and act with staff's rights (they pass no user). The README's "Who may do what" shows the
table as people read it: viewers read; operators also run and change the work and the ordinary settings; the
budget, the jail's fields, notifications, members and deletion are the owner's (and staff's).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from apps.core.errors import PermissionDeniedError
from apps.projects.models import OWNER_ONLY_FIELDS, MembershipRole, Project, ProjectMembership

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


class Act(StrEnum):
    VIEW = "view"
    OPERATE = "operate"
    SETTINGS = "settings"
    JAIL = "jail"
    BUDGET = "budget"
    NOTIFICATIONS = "notifications"
    MEMBERS = "members"
    DELETE = "delete"


OWNER, STAFF = "owner", "staff"
ROLE_ACTS: dict[str, frozenset[Act]] = {
    MembershipRole.VIEWER: frozenset({Act.VIEW}),
    MembershipRole.OPERATOR: frozenset({Act.VIEW, Act.OPERATE, Act.SETTINGS}),
    OWNER: frozenset(Act),
    STAFF: frozenset(Act),
}
# What each act is called in a refusal ("you may not <words> (project 'x', your role: operator)").
WORDS: dict[Act, str] = {
    Act.VIEW: "see it", Act.OPERATE: "run or change its work", Act.SETTINGS: "change the settings",
    Act.JAIL: "change what runs in the jail or what it reaches", Act.BUDGET: "change or approve the budget",
    Act.NOTIFICATIONS: "change the notifications", Act.MEMBERS: "change the members", Act.DELETE: "delete it",
}


def role_of(user: AbstractBaseUser, project: Project) -> str | None:
    """The user's role on the project: staff, owner, operator, viewer, or None (no access)."""
    if not user.is_authenticated:
        return None
    if user.is_staff:
        return STAFF
    if project.owner_id == user.pk:
        return OWNER
    return (ProjectMembership.objects.filter(project=project, user=user).values_list("role", flat=True).first())


def allowed(user: AbstractBaseUser, project: Project, act: Act) -> bool:
    role = role_of(user, project)
    return role is not None and act in ROLE_ACTS[role]


def permission_require(user: AbstractBaseUser, project: Project, act: Act, **details: object) -> None:
    """Refuse (403, naming the role and the act) unless the user's role allows `act` on the project."""
    role = role_of(user, project)
    if role is None or act not in ROLE_ACTS[role]:
        raise PermissionDeniedError(f"you may not {WORDS[act]} (project {project.slug!r}, your role: "
                                    f"{role or 'none'}); ask its owner",
                                    details={"act": str(act), "role": role, **details})


def acts_for_fields(fields: set[str]) -> dict[Act, list[str]]:
    """Which acts changing these project fields needs: the budget, the jail's fields, the other settings."""
    needs: dict[Act, list[str]] = {}
    for name in sorted(fields):
        act = Act.BUDGET if name == "budget_usd" else Act.JAIL if name in OWNER_ONLY_FIELDS else Act.SETTINGS
        needs.setdefault(act, []).append(name)
    return needs
