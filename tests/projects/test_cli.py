"""`manage.py yokeflow …`: verbs work end to end; failures are one readable line and a non-zero exit."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.projects.models import Project, Task

pytestmark = pytest.mark.django_db


def yokeflow(*args: str) -> str:
    out = io.StringIO()
    call_command("yokeflow", *args, stdout=out)
    return out.getvalue()


def refused(*args: str) -> CommandError:
    with pytest.raises(CommandError) as caught:
        yokeflow(*args)
    assert "\n" not in str(caught.value)
    return caught.value


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "spec.md"
    path.write_text("# Shop\nSell things.")
    return path


@pytest.fixture
def plan_file(tmp_path, example_plan):
    def write(plan: dict = example_plan) -> str:
        path = tmp_path / "plan.json"
        path.write_text(json.dumps(plan))
        return str(path)

    return write


def test_new_import_graph_and_status_work_together(owner, spec_file, plan_file):
    assert "created project shop" in yokeflow("new", "Shop", "--spec", str(spec_file), "--owner", "olivia")
    assert "3 epics, 9 tasks" in yokeflow("import-plan", "shop", plan_file())

    ascii_view = yokeflow("graph", "shop")
    mermaid = yokeflow("graph", "shop", "--format", "mermaid")
    as_json = json.loads(yokeflow("graph", "shop", "--format", "json"))
    status = yokeflow("status", "shop")

    assert "Batch 7" in ascii_view and "Critical path" in ascii_view
    assert mermaid.startswith("graph TD")
    assert as_json["batches"][0] == ["T1"]
    assert "ready: 2" in status and "7 batches" in status
    assert Project.objects.get(slug="shop").spec == "# Shop\nSell things."


def test_import_of_a_cyclic_plan_exits_non_zero_naming_the_keys(planned_project, owner, plan_file, example_plan):
    project = Project.objects.create(owner=owner, name="Fresh", slug="fresh")
    example_plan["epics"][0]["tasks"][0]["depends_on"] = ["T3"]

    error = refused("import-plan", "fresh", plan_file(example_plan))

    assert error.returncode == 65
    assert "cycle between T1, T2, T3" in str(error)
    assert not Task.objects.filter(project=project).exists()


def test_import_of_an_unknown_key_exits_non_zero(owner, plan_file, example_plan):
    Project.objects.create(owner=owner, name="Fresh", slug="fresh")
    example_plan["epics"][2]["tasks"][0]["depends_on"] = ["T42"]

    error = refused("import-plan", "fresh", plan_file(example_plan))

    assert "T7→T42" in str(error)
    assert not Task.objects.exists()


@pytest.mark.parametrize(
    ("args", "fragment", "code"),
    [
        (("import-plan", "nowhere", "plan.json"), "project 'nowhere' not found", 66),
        (("graph", "nowhere"), "project 'nowhere' not found", 66),
        (("new", "X", "--spec", "/no/such/spec.md", "--owner", "olivia"), "spec file not found", 65),
        (("new", "X", "--spec", "{spec}", "--owner", "ghost"), "no user named 'ghost'", 66),
        (("new", "Admin", "--spec", "{spec}", "--owner", "olivia"), "'admin' is reserved", 65),
        (("token", "create", "ghost"), "no user named 'ghost'", 66),
    ],
)
def test_failures_are_one_line_with_an_exit_code(owner, spec_file, args, fragment, code):
    args = tuple(a.replace("{spec}", str(spec_file)) for a in args)

    error = refused(*args)

    assert fragment in str(error)
    assert error.returncode == code


def test_import_of_a_missing_file_names_it(planned_project):
    assert "plan file not found: /nope.json" in str(refused("import-plan", "todo-service", "/nope.json"))


def test_token_create_prints_a_token_that_works(owner, client):
    raw = yokeflow("token", "create", "olivia").splitlines()[0]

    assert client.get("/api/projects/", headers={"Authorization": f"Bearer {raw}"}).status_code == 200


def test_a_spec_with_a_nul_character_is_refused(owner, tmp_path):
    spec = tmp_path / "spec.md"
    spec.write_text("bad\x00spec")

    error = refused("new", "Nul", "--spec", str(spec), "--owner", "olivia")

    assert "spec: Null characters are not allowed." in str(error)
    assert not Project.objects.exists()
