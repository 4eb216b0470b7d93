"""The JSON API: authentication, access per project, validation (422 with the field), graph endpoints."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from apps.core.models import ApiToken
from apps.projects.models import Project, Task, TaskDependency
from apps.projects.plan import plan_import
from tests.factories import wide_plan

pytestmark = pytest.mark.django_db


def _post(client: Client, url: str, body) -> tuple[int, dict]:
    response = client.post(url, data=json.dumps(body), content_type="application/json")
    return response.status_code, response.json() if response.content else {}


def _fields(body: dict) -> list[str]:
    return [".".join(str(p) for p in err["loc"]) for err in body["detail"]]


# ---------------------------------------------------------------- authentication


@pytest.mark.parametrize("url", ["/api/projects/", "/api/projects/1", "/api/projects/1/dependencies"])
def test_it_answers_401_without_credentials(client, url):
    response = client.get(url)

    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"


def test_it_refuses_an_unknown_or_revoked_token(owner, api_client):
    assert Client(headers={"Authorization": "Bearer yf_not-a-token"}).get("/api/projects/").status_code == 401
    client = api_client(owner)
    ApiToken.objects.update(revoked_at="2026-01-01T00:00:00Z")
    assert client.get("/api/projects/").status_code == 401


def test_it_accepts_a_browser_session(client, owner, project):
    client.force_login(owner)

    assert client.get(f"/api/projects/{project.pk}").json()["slug"] == "todo-service"


def test_a_session_write_needs_the_csrf_token(owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)

    status, _ = _post(client, "/api/projects/", {"name": "No token"})

    assert status == 403
    assert not Project.objects.filter(name="No token").exists()


# ---------------------------------------------------------------- projects


def test_it_creates_a_project_owned_by_the_caller(owner, api_client):
    status, body = _post(api_client(owner), "/api/projects/", {"name": "Shop", "max_concurrency": 4})

    assert status == 201
    assert (body["slug"], body["owner"], body["max_concurrency"]) == ("shop", "olivia", 4)
    assert body["counts"]["total"] == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "body.payload.name"),
        ({"name": "x" * 256}, "body.payload.name"),
        ({"name": "ok", "slug": "Bad Slug!"}, "body.payload.slug"),
        ({"name": "ok", "max_concurrency": 0}, "body.payload.max_concurrency"),
        ({"name": "ok", "strategy": "yolo"}, "body.payload.strategy"),
        ({"name": "ok", "budget_usd": -1}, "body.payload.budget_usd"),
        ({}, "body.payload.name"),
    ],
)
def test_it_answers_422_naming_the_bad_field(owner, api_client, body, field):
    status, answer = _post(api_client(owner), "/api/projects/", body)

    assert status == 422
    assert field in _fields(answer)
    assert not Project.objects.exists()


def test_it_refuses_reserved_and_taken_slugs(owner, api_client, project):
    client = api_client(owner)

    status, body = _post(client, "/api/projects/", {"name": "Admin"})
    assert (status, body["details"]["fields"]) == (422, {"slug": ["'admin' is reserved"]})

    status, body = _post(client, "/api/projects/", {"name": "Todo service"})
    assert (status, body["error"]) == (409, "slug_taken")


def test_it_answers_422_for_a_malformed_json_body(owner, api_client):
    response = api_client(owner).post("/api/projects/", data="{nope", content_type="application/json")

    assert response.status_code == 422
    assert _fields(response.json()) == ["body"]
    assert not Project.objects.exists()


def test_it_lists_only_the_projects_a_user_belongs_to(project, owner, outsider, viewer, staff, api_client):
    def slugs(user) -> list[str]:
        return [p["slug"] for p in api_client(user).get("/api/projects/").json()["items"]]

    assert slugs(owner) == slugs(viewer) == slugs(staff) == ["todo-service"]
    assert slugs(outsider) == []


def test_it_hides_other_peoples_projects_as_404(project, outsider, api_client):
    response = api_client(outsider).get(f"/api/projects/{project.pk}")

    assert response.status_code == 404
    assert response.json()["error"] == "project_not_found"


def test_a_viewer_reads_but_cannot_act(project, viewer, api_client, example_plan):
    client = api_client(viewer)

    assert client.get(f"/api/projects/{project.slug}").status_code == 200
    status, body = _post(client, f"/api/projects/{project.pk}/plan", example_plan)
    assert (status, body["error"]) == (403, "permission_denied")
    assert not Task.objects.exists()


def test_an_operator_may_import_but_only_the_owner_may_delete(project, operator, owner, api_client, example_plan):
    status, _ = _post(api_client(operator), f"/api/projects/{project.pk}/plan", example_plan)
    assert status == 201
    assert api_client(operator).delete(f"/api/projects/{project.pk}").status_code == 403

    assert api_client(owner).delete(f"/api/projects/{project.pk}").status_code == 204
    assert not Project.objects.exists()


def test_it_updates_project_settings(project, owner, api_client):
    response = api_client(owner).patch(
        f"/api/projects/{project.pk}", data=json.dumps({"strategy": "batch", "budget_usd": "12.50"}),
        content_type="application/json",
    )

    assert response.status_code == 200
    project.refresh_from_db()
    assert (project.strategy, str(project.budget_usd)) == ("batch", "12.50")


def test_patch_changes_only_what_was_sent_and_null_clears_the_budget(project, owner, api_client):
    client = api_client(owner)
    client.patch(f"/api/projects/{project.pk}", data=json.dumps({"budget_usd": "5"}), content_type="application/json")

    response = client.patch(f"/api/projects/{project.pk}", data=json.dumps({"budget_usd": None}),
                            content_type="application/json")
    refused = client.patch(f"/api/projects/{project.pk}", data=json.dumps({"name": None}),
                           content_type="application/json")

    project.refresh_from_db()
    assert response.status_code == 200
    assert (project.budget_usd, project.name, project.strategy) == (None, "Todo service", "ready")
    assert refused.status_code == 422


# ---------------------------------------------------------------- plans, epics and tasks


def test_it_imports_a_plan_and_reports_batches(project, owner, api_client, example_plan):
    status, body = _post(api_client(owner), f"/api/projects/{project.pk}/plan", example_plan)

    assert status == 201
    assert (body["epics"], body["tasks"], body["tests"], body["batches"]) == (3, 9, 9, 7)


def test_it_refuses_a_cyclic_plan_with_422_and_writes_nothing(project, owner, api_client, example_plan):
    example_plan["epics"][0]["tasks"][0]["depends_on"] = ["T3"]  # T1 → T3 → T2 → T1

    status, body = _post(api_client(owner), f"/api/projects/{project.pk}/plan", example_plan)

    assert status == 422
    assert body["details"]["problems"][0]["keys"] == ["T1", "T2", "T3"]
    assert not Task.objects.exists()


def test_it_refuses_an_unknown_plan_field_with_its_path(project, owner, api_client, example_plan):
    example_plan["epics"][1]["tasks"][0]["estimate"] = 3

    status, body = _post(api_client(owner), f"/api/projects/{project.pk}/plan", example_plan)

    assert status == 422
    assert "body.plan.epics.1.tasks.0.estimate" in _fields(body)


def test_it_pages_and_filters_tasks(planned_project, owner, api_client):
    client = api_client(owner)
    url = f"/api/projects/{planned_project.pk}/tasks"

    everything = client.get(url).json()
    ready = client.get(url, {"status": "ready"}).json()
    epic = client.get(url, {"epic": "E2"}).json()
    page2 = client.get(url, {"page": 2, "page_size": 4}).json()

    assert everything["count"] == 9
    assert [t["key"] for t in ready["items"]] == ["T1", "T9"]
    assert [t["key"] for t in epic["items"]] == ["T4", "T5", "T6"]
    assert [t["key"] for t in page2["items"]] == ["T5", "T6", "T7", "T8"]


def test_it_answers_422_for_an_unknown_status_filter(planned_project, owner, api_client):
    response = api_client(owner).get(f"/api/projects/{planned_project.pk}/tasks", {"status": "sleeping"})

    assert response.status_code == 422
    assert "query.status" in _fields(response.json())


def test_it_shows_a_task_with_its_tests_and_dependencies(planned_project, owner, api_client):
    body = api_client(owner).get(f"/api/projects/{planned_project.pk}/tasks/T8").json()

    assert sorted(d["depends_on"] for d in body["depends_on"]) == ["T6", "T7"]
    assert body["tests"][0]["command"] == "pytest -q tests/test_pages.py -k tick"
    assert api_client(owner).get(f"/api/projects/{planned_project.pk}/tasks/T99").status_code == 404


def test_it_lists_epics_with_progress(planned_project, owner, api_client):
    items = api_client(owner).get(f"/api/projects/{planned_project.pk}/epics").json()["items"]

    assert [(e["key"], e["task_count"], e["depends_on"]) for e in items] == [
        ("E1", 3, []), ("E2", 3, ["E1"]), ("E3", 3, []),
    ]


# ---------------------------------------------------------------- dependency graph


def test_it_serves_the_graph_in_three_formats(planned_project, owner, api_client):
    client = api_client(owner)
    url = f"/api/projects/{planned_project.pk}/dependencies"

    graph = client.get(url).json()
    mermaid = client.get(url, {"format": "mermaid"}).json()["content"]
    ascii_view = client.get(url, {"format": "ascii"}).json()["content"]

    assert len(graph["nodes"]) == 9 and graph["batches"][0] == ["T1"]
    assert {"task": "T9", "depends_on": "T4", "kind": "soft"} in graph["edges"]
    assert mermaid.startswith("graph TD")
    assert "Batch 1" in ascii_view
    assert client.get(url, {"format": "png"}).status_code == 422


def test_it_serves_batches_critical_path_and_validation(planned_project, owner, api_client):
    client = api_client(owner)
    base = f"/api/projects/{planned_project.pk}/dependencies"

    batches = client.get(f"{base}/batches").json()
    critical = client.get(f"{base}/critical-path").json()
    check = client.get(f"{base}/validate").json()

    assert batches[4] == {"number": 5, "tasks": ["T5", "T6", "T9"]}
    assert critical == {"tasks": ["T1", "T2", "T3", "T4", "T5", "T7", "T8"], "total_minutes": 140.0}
    assert check["valid"] is True and check["cycles"] == [] and check["batches"] == 7


def test_it_adds_a_dependency_and_sends_a_ready_task_back_to_pending(planned_project, owner, api_client):
    status, body = _post(api_client(owner), f"/api/projects/{planned_project.pk}/tasks/T9/dependencies",
                         {"depends_on": "T1"})

    assert status == 201
    assert body == {"task": "T9", "depends_on": "T1", "kind": "hard", "origin": "manual"}
    assert Task.objects.get(project=planned_project, key="T9").status == "pending"


@pytest.mark.parametrize(
    ("task", "body", "status", "error"),
    [
        ("T1", {"depends_on": "T8"}, 422, "cycle"),
        ("T1", {"depends_on": "T1"}, 422, "self_dependency"),
        ("T2", {"depends_on": "T1"}, 409, "dependency_exists"),
        ("T2", {"depends_on": "T404"}, 404, "task_not_found"),
    ],
)
def test_it_refuses_bad_dependencies_clearly(planned_project, owner, api_client, task, body, status, error):
    before = TaskDependency.objects.count()

    code, answer = _post(api_client(owner), f"/api/projects/{planned_project.pk}/tasks/{task}/dependencies", body)

    assert (code, answer["error"]) == (status, error)
    assert TaskDependency.objects.count() == before


def test_it_answers_422_for_a_bad_dependency_kind(planned_project, owner, api_client):
    code, answer = _post(api_client(owner), f"/api/projects/{planned_project.pk}/tasks/T9/dependencies",
                         {"depends_on": "T1", "kind": "maybe"})

    assert code == 422
    assert "body.payload.kind" in _fields(answer)


def test_the_openapi_document_lists_the_endpoints(client, owner):
    client.force_login(owner)

    paths = client.get("/api/openapi.json").json()["paths"]

    for path in ("/api/projects/", "/api/projects/{project_id}/plan", "/api/projects/{project_id}/dependencies",
                 "/api/projects/{project_id}/dependencies/batches",
                 "/api/projects/{project_id}/dependencies/critical-path",
                 "/api/projects/{project_id}/dependencies/validate",
                 "/api/projects/{project_id}/tasks/{task_id}/dependencies"):
        assert path in paths
    assert client.get("/api/docs").status_code == 200


# ---------------------------------------------------------------- hostile input


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/api/projects/%00", 404),
        ("/api/projects/99999999999999999999999", 404),
        ("/api/projects/todo-service/tasks/T1%00", 404),
        ("/api/projects/todo-service/tasks?epic=E%00", 422),
        ("/api/projects/todo-service/tasks?page=0", 422),
        ("/api/projects/todo-service/tasks?page=99999999999999999", 422),
        ("/api/projects/todo-service/tasks?epic=99999999999999999999999", 200),
        ("/api/projects/%C2%B9/tasks", 404),
    ],
)
def test_odd_ids_and_queries_are_refused_not_crashed(planned_project, owner, api_client, url, status):
    assert api_client(owner).get(url).status_code == status


def test_a_nul_character_in_a_body_is_a_422_naming_the_field(owner, api_client, example_plan, project):
    client = api_client(owner)

    status, body = _post(client, "/api/projects/", {"name": "a\x00b"})
    assert (status, _fields(body)) == (422, ["body.name"])

    example_plan["epics"][0]["tasks"][1]["title"] = "bad\x00title"
    status, body = _post(client, f"/api/projects/{project.pk}/plan", example_plan)
    assert status == 422
    assert "body.epics.0.tasks.1.title" in _fields(body)
    assert not Task.objects.exists()


def test_numeric_task_keys_resolve_by_key_before_id(project, owner, api_client):
    tasks = [{"key": str(n), "title": f"task {n}"} for n in range(1, 4)]
    plan = {"epics": [{"key": "E1", "title": "E", "tasks": tasks}]}
    _post(api_client(owner), f"/api/projects/{project.pk}/plan", plan)
    other = Task.objects.get(key="3")

    assert api_client(owner).get(f"/api/projects/{project.pk}/tasks/1").json()["key"] == "1"
    assert api_client(owner).get(f"/api/projects/{project.pk}/tasks/{other.pk}").status_code == 200


def test_an_oversized_body_is_413_not_a_crash(owner, api_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024

    status, body = _post(api_client(owner), "/api/projects/", {"name": "big", "spec": "x" * 5000})

    assert (status, body["error"]) == (413, "request_too_large")
    assert not Project.objects.exists()


def test_a_page_holds_up_to_the_documented_thousand(project, owner, api_client):
    plan_import(project=project, data=wide_plan(1200))
    client = api_client(owner)

    full = client.get(f"/api/projects/{project.pk}/tasks", {"page_size": 1000}).json()
    too_many = client.get(f"/api/projects/{project.pk}/tasks", {"page_size": 1001})

    assert full["count"] == 1200 and len(full["items"]) == 1000
    assert too_many.status_code == 422
