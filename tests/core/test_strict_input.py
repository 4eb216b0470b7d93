"""Strict input, generated from the OpenAPI document rather than listed by hand: every string field of every
request body refuses a NUL and a lone surrogate with a 422 naming it; the schema declares the error statuses;
the schema and docs open to a bearer token; branch names and env_files patterns are checked."""

from __future__ import annotations

import json

import pytest

from apps.projects.models import Project
from yokeflow.api import api

pytestmark = pytest.mark.django_db

BAD = {"NUL": "a\x00b", "lone surrogate": "a\ud800b"}


def _resolve(schema: dict, spec: dict) -> dict:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _takes_text(prop: dict, spec: dict) -> bool:
    options = [_resolve(p, spec) for p in prop.get("anyOf", [prop])]
    return any(o.get("type") == "string" or (o.get("type") == "array" and
                                              _resolve(o.get("items", {}), spec).get("type") == "string")
               for o in options)


def string_fields() -> list[tuple[str, str, str, bool]]:
    """(method, path, field, is a list) for every string-typed property of every JSON request body."""
    spec = api.get_openapi_schema()
    found = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if not body:
                continue
            for name, prop in _resolve(body, spec).get("properties", {}).items():
                if _takes_text(prop, spec):
                    is_list = any(_resolve(o, spec).get("type") == "array" for o in prop.get("anyOf", [prop]))
                    found.append((method, path, name, is_list))
    return found


FIELDS = string_fields()


def test_the_schema_has_string_fields_to_check():
    assert len(FIELDS) >= 20 and ("patch", "/api/projects/{project_id}", "spec", False) in FIELDS


@pytest.mark.parametrize("kind", list(BAD))
@pytest.mark.parametrize(("method", "path", "field", "is_list"), FIELDS,
                         ids=[f"{m} {p} {f}" for m, p, f, _ in FIELDS])
def test_every_string_field_refuses_unstorable_text(method, path, field, is_list, kind, planned_project, owner,
                                                    api_client):
    url = path.format(project_id=planned_project.slug, task_id="T1", session_id=1, pause_id=1, epic_id="E1",
                      domain="database", number=1)
    value = [BAD[kind]] if is_list else BAD[kind]

    response = getattr(api_client(owner), method)(url, data=json.dumps({field: value}),
                                                   content_type="application/json")

    assert response.status_code == 422, response.content
    [problem] = response.json()["detail"]
    assert problem["loc"][:2] == ["body", field] and "must not contain" in problem["msg"]


def test_every_operation_declares_its_error_statuses():
    spec = api.get_openapi_schema()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            declared = set(operation["responses"])
            assert "401" in declared, (method, path)
            if "{" in path:
                assert "404" in declared, (method, path)
            if method != "get":
                assert {"403", "409", "422"} <= declared, (method, path)


def test_the_schema_and_docs_open_to_a_bearer_token(owner, api_client, client):
    with_token = api_client(owner)
    schema = with_token.get("/api/openapi.json")
    assert schema.status_code == 200 and schema.json()["info"]["title"] == "YokeFlow API"
    assert with_token.get("/api/docs").status_code == 200

    bad = client.get("/api/openapi.json", headers={"Authorization": "Bearer yf_nope"})
    assert bad.status_code == 401 and bad["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/api/docs")["Location"].startswith("/login/")  # a browser without a session logs in first


@pytest.mark.parametrize("branch", ["--upload-pack=touch /tmp/x", "-b", "main..dev", "feat branch", "a:b",
                                    "release/", ".hidden", "x.lock", "@", "a@{1}", "refs//x", "~x"])
def test_a_branch_name_git_would_refuse_or_read_as_an_option_is_refused(branch, project, owner, api_client):
    response = api_client(owner).patch(f"/api/projects/{project.slug}", data=json.dumps({"default_branch": branch}),
                                       content_type="application/json")

    assert response.status_code == 422 and "is not a valid branch name" in response.text
    assert Project.objects.get(pk=project.pk).default_branch == "main"


def test_ordinary_branch_names_are_accepted(project, owner, api_client):
    for branch in ("develop", "release/2026.12", "feature/x-y_z"):
        response = api_client(owner).patch(f"/api/projects/{project.slug}",
                                           data=json.dumps({"default_branch": branch}),
                                           content_type="application/json")
        assert response.status_code == 200 and response.json()["default_branch"] == branch


@pytest.mark.parametrize("pattern", ["../secrets/.env", "/etc/passwd", "~/.ssh/id_rsa", "config/../../x",
                                     "C:/Windows/x", "..\\x"])
def test_env_files_patterns_must_stay_inside_the_repository(pattern, project, owner, api_client):
    response = api_client(owner).patch(f"/api/projects/{project.slug}", data=json.dumps({"env_files": [pattern]}),
                                       content_type="application/json")

    assert response.status_code == 422 and "must be relative to the repository" in response.text
    assert Project.objects.get(pk=project.pk).env_files == [".env", ".env.*"]
