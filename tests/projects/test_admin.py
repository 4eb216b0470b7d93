"""The admin works for every plan model and still refuses illegal task moves."""

from __future__ import annotations

import pytest

from apps.projects.models import Task

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    return client


@pytest.mark.parametrize(
    "model", ["project", "epic", "task", "taskdependency", "acceptancetest", "projectmembership"]
)
def test_every_plan_model_has_a_working_changelist(admin_client, planned_project, model):
    response = admin_client.get(f"/admin/projects/{model}/", {"q": "T"})

    assert response.status_code == 200


def test_the_token_changelist_works_and_tokens_cannot_be_added(admin_client):
    assert admin_client.get("/admin/core/apitoken/").status_code == 200
    assert admin_client.get("/admin/core/apitoken/add/").status_code == 403


def test_the_task_form_refuses_an_illegal_move(admin_client, planned_project):
    task = Task.objects.get(key="T2")
    form = admin_client.get(f"/admin/projects/task/{task.pk}/change/").context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None}
    data.update({"status": "done", "epic": task.epic_id, "project": task.project_id,
                 "tests-TOTAL_FORMS": 0, "tests-INITIAL_FORMS": 0,
                 "dependencies-TOTAL_FORMS": 0, "dependencies-INITIAL_FORMS": 0})

    response = admin_client.post(f"/admin/projects/task/{task.pk}/change/", data)

    assert response.status_code == 200
    assert "a task cannot go from pending to done" in response.text
    task.refresh_from_db()
    assert task.status == "pending"
