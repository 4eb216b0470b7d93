"""The role matrix through the API: every role against every act, allowed and refused — and a refusal changes
nothing. The permission table is `apps/projects/permissions.py`; the README's "Who may do what" shows it."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from apps.core.models import AuditEvent
from apps.interventions.models import NotificationPreference
from apps.projects.models import Project, Task
from apps.projects.permissions import ROLE_ACTS, Act, allowed
from apps.projects.services import membership_set

pytestmark = pytest.mark.django_db

OK, FORBIDDEN, HIDDEN = "ok", 403, 404
# act: (method, path under /api/projects/{id}, body, what proves it happened)
ACTS = {
    Act.VIEW: ("get", "", None),
    Act.OPERATE: ("post", "/tasks/{task}/cancel", None),
    Act.SETTINGS: ("patch", "", {"max_concurrency": 3}),
    Act.JAIL: ("patch", "", {"setup_command": "make setup"}),
    Act.BUDGET: ("patch", "", {"budget_usd": "99999"}),
    "budget approve": ("post", "/budget/approve", {"amount": "5"}),
    Act.NOTIFICATIONS: ("post", "/notifications/preferences", {"webhook_url": "https://hooks.example.com/x"}),
    Act.DELETE: ("delete", "", None),
}
EXPECTED = {
    "outsider": dict.fromkeys(ACTS, HIDDEN),
    "viewer": {**dict.fromkeys(ACTS, FORBIDDEN), Act.VIEW: OK},
    "operator": {**dict.fromkeys(ACTS, FORBIDDEN), Act.VIEW: OK, Act.OPERATE: OK, Act.SETTINGS: OK},
    "owner": dict.fromkeys(ACTS, OK),
    "staff": dict.fromkeys(ACTS, OK),
}


@pytest.fixture
def budgeted(planned_project) -> Project:
    planned_project.budget_usd = Decimal("10")
    planned_project.save()
    return planned_project


def fingerprint(project: Project) -> str:
    """Everything an act could change: the project's row, its tasks' statuses, its notification settings."""
    row = Project.objects.filter(pk=project.pk).values().first()
    tasks = sorted(Task.objects.filter(project_id=project.pk).values_list("key", "status"))
    prefs = list(NotificationPreference.objects.filter(project_id=project.pk).values("webhook_url"))
    return json.dumps([row, tasks, prefs], default=str, sort_keys=True)


@pytest.mark.parametrize("role", list(EXPECTED))
@pytest.mark.parametrize("act", list(ACTS), ids=str)
def test_each_role_may_do_exactly_what_the_table_says(role, act, budgeted, owner, outsider, staff, viewer, operator,
                                                      api_client):
    users = {"outsider": outsider, "viewer": viewer, "operator": operator, "owner": owner, "staff": staff}
    method, path, body = ACTS[act]
    task = budgeted.tasks.order_by("position").first()
    url = f"/api/projects/{budgeted.pk}" + path.format(task=task.key)
    before = fingerprint(budgeted)

    client = api_client(users[role])
    response = getattr(client, method)(url, data=json.dumps(body) if body else None, content_type="application/json")

    expected = EXPECTED[role][act]
    if expected == OK:
        assert response.status_code in (200, 201, 204), response.content
        assert method == "get" or fingerprint(budgeted) != before  # the act took effect
    else:
        assert response.status_code == expected, response.content
        assert fingerprint(budgeted) == before  # a refusal changes nothing
        if expected == FORBIDDEN:
            assert f"your role: {role}" in response.json()["message"]


def test_the_table_and_the_function_agree_for_every_role_and_act(project, owner, staff, viewer, operator, outsider):
    roles = {"viewer": viewer, "operator": operator, "owner": owner, "staff": staff}
    for role, user in roles.items():
        for act in Act:
            assert allowed(user, project, act) == (act in ROLE_ACTS[role]), (role, act)
    assert not any(allowed(outsider, project, act) for act in Act)


def test_an_operator_asks_the_owner_for_budget_and_the_refusal_is_not_a_change(budgeted, operator, owner, api_client):
    refused = api_client(operator).patch(f"/api/projects/{budgeted.pk}", data={"budget_usd": "99999"},
                                         content_type="application/json")

    assert refused.status_code == 403 and refused.json()["details"]["fields"] == ["budget_usd"]
    budgeted.refresh_from_db()
    assert budgeted.budget_usd == Decimal("10")
    assert not AuditEvent.objects.filter(action="settings_changed", project_id=budgeted.pk).exists()


def test_member_changes_need_the_owner_and_are_audited(project, owner, operator, make_user):
    from apps.core.errors import PermissionDeniedError

    newcomer = make_user("nina")
    with pytest.raises(PermissionDeniedError):
        membership_set(project=project, user=newcomer, role="operator", by=operator)
    membership_set(project=project, user=newcomer, role="viewer", by=owner)

    event = AuditEvent.objects.filter(action="membership_changed", details__user="nina").get()
    assert event.actor == "olivia" and event.details["role"] == [None, "viewer"]


def test_the_pages_hide_and_refuse_budget_approval_for_an_operator(budgeted, operator, owner, client):
    client.force_login(operator)
    page = client.get(f"/projects/{budgeted.slug}/").text
    refused = client.post(f"/projects/{budgeted.slug}/budget/approve", {"amount": "50"})

    assert "Approve more budget" not in page and refused.status_code == 403
    budgeted.refresh_from_db()
    assert budgeted.budget_usd == Decimal("10")
    client.force_login(owner)
    assert "Approve more budget" in client.get(f"/projects/{budgeted.slug}/").text
