"""Plan import: a sound plan is written whole; a bad one is refused with every offending key and nothing written."""

from __future__ import annotations

import pytest

from apps.core.errors import ConflictError, ValidationError
from apps.projects.models import AcceptanceTest, Epic, Project, Task, TaskDependency
from apps.projects.plan import PlanValidationError, plan_import, plan_parse, plan_suggest_dependencies
from apps.projects.services import task_transition

pytestmark = pytest.mark.django_db


def _task(key: str, *deps: str, **extra) -> dict:
    return {"key": key, "title": f"Task {key}", "depends_on": list(deps), **extra}


def _plan(*epics: dict) -> dict:
    return {"epics": list(epics)}


def _epic(key: str, *tasks: dict, depends_on: list[str] | None = None) -> dict:
    return {"key": key, "title": f"Epic {key}", "tasks": list(tasks), "depends_on": depends_on or []}


def _nothing_written(project: Project) -> bool:
    return not Epic.objects.filter(project=project).exists() and not Task.objects.filter(project=project).exists()


def test_it_imports_the_example_plan_whole(project, example_plan):
    result = plan_import(project=project, data=example_plan)

    assert (result.epics, result.tasks, result.tests) == (3, 9, 9)
    assert Task.objects.filter(project=project).count() == 9
    assert AcceptanceTest.objects.filter(task__project=project).count() == 9
    t8 = Task.objects.get(project=project, key="T8")
    assert sorted(d.depends_on.key for d in t8.dependencies.all()) == ["T6", "T7"]
    project.refresh_from_db()
    assert project.status == Project.Status.PLANNED


def test_it_marks_only_tasks_without_unfinished_hard_dependencies_ready(planned_project):
    ready = set(Task.objects.filter(project=planned_project, status="ready").values_list("key", flat=True))
    # T9 depends on T4 only softly, so nothing blocks it.
    assert ready == {"T1", "T9"}


def test_it_expands_an_epic_dependency_to_every_task_pair(project):
    plan = _plan(_epic("E1", _task("A"), _task("B")), _epic("E2", _task("C"), depends_on=["E1"]))
    plan_import(project=project, data=plan)

    deps = TaskDependency.objects.filter(task__key="C").values_list("depends_on__key", "origin")
    assert sorted(deps) == [("A", "epic"), ("B", "epic")]
    assert list(Epic.objects.get(key="E2").depends_on.values_list("key", flat=True)) == ["E1"]


def test_it_refuses_a_cycle_naming_its_members_and_writes_nothing(project):
    plan = _plan(_epic("E1", _task("A", "C"), _task("B", "A"), _task("C", "B"), _task("D")))

    with pytest.raises(PlanValidationError) as refused:
        plan_import(project=project, data=plan)

    assert refused.value.problems[0].code == "task_cycle"
    assert refused.value.problems[0].keys == ["A", "B", "C"]
    assert "A, B, C" in refused.value.message
    assert _nothing_written(project)


def test_it_refuses_an_epic_cycle(project):
    plan = _plan(_epic("E1", _task("A"), depends_on=["E2"]), _epic("E2", _task("B"), depends_on=["E1"]))

    with pytest.raises(PlanValidationError) as refused:
        plan_import(project=project, data=plan)

    assert [p.code for p in refused.value.problems] == ["epic_cycle"]
    assert refused.value.problems[0].keys == ["E1", "E2"]


def test_it_reports_every_unknown_duplicate_and_self_key_at_once(project):
    plan = _plan(
        _epic("E1", _task("A", "NOPE"), _task("A"), _task("B", "B"), depends_on=["E9"]),
        _epic("E1", _task("C", "GONE")),
    )

    with pytest.raises(PlanValidationError) as refused:
        plan_import(project=project, data=plan)

    found = {p.code: p.keys for p in refused.value.problems}
    assert found == {
        "duplicate_epic_key": ["E1"],
        "duplicate_task_key": ["A"],
        "unknown_epic_dependency": ["E1→E9"],
        "unknown_task_dependency": ["A→NOPE", "C→GONE"],
        "self_task_dependency": ["B"],
    }
    assert _nothing_written(project)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ({"epics": []}, "epics"),
        ({"epics": [{"key": "E1", "title": "x", "tasks": [{"key": "T1", "title": "t", "depends-on": []}]}]},
         "epics.0.tasks.0.depends-on"),
        ({"epics": [{"key": "bad key", "title": "x"}]}, "epics.0.key"),
        ({"epics": [{"key": "E1", "title": "x", "tasks": [{"key": "T1", "title": "t", "domain": "cooking"}]}]},
         "epics.0.tasks.0.domain"),
    ],
)
def test_it_refuses_malformed_plans_with_the_field_path(project, data, fragment):
    with pytest.raises(ValidationError) as refused:
        plan_import(project=project, data=data)

    assert fragment in refused.value.message
    assert _nothing_written(project)


def test_it_refuses_to_overwrite_a_plan_unless_asked(planned_project, example_plan):
    with pytest.raises(ConflictError, match="already has a plan"):
        plan_import(project=planned_project, data=example_plan)

    result = plan_import(project=planned_project, data=example_plan, replace=True)
    assert result.tasks == Task.objects.filter(project=planned_project).count() == 9


def test_it_refuses_to_replace_a_plan_that_has_started(planned_project, example_plan):
    task_transition(task=Task.objects.get(project=planned_project, key="T1"), to="running")

    with pytest.raises(ConflictError, match="T1"):
        plan_import(project=planned_project, data=example_plan, replace=True)

    assert Task.objects.get(project=planned_project, key="T1").status == "running"


def test_it_suggests_layered_dependencies_without_applying_them(project):
    plan = _plan(_epic(
        "E1",
        _task("S", domain="database", title="Order schema"),
        _task("P", domain="api", title="Orders endpoint"),
        _task("U", title="Orders page"),
    ))

    result = plan_import(project=project, data=plan)

    pairs = [(s.task, s.depends_on, s.reason) for s in result.suggestions]
    assert pairs == [("P", "S", "schema/model before API"), ("U", "P", "API before UI")]
    assert not TaskDependency.objects.filter(task__project=project).exists()


def test_it_applies_suggestions_when_asked(project):
    plan = _plan(_epic("E1", _task("S", domain="database"), _task("P", domain="api")))

    plan_import(project=project, data=plan, apply_suggestions=True)

    dep = TaskDependency.objects.get(task__key="P")
    assert (dep.depends_on.key, dep.origin) == ("S", "inferred")


def test_it_never_suggests_a_dependency_that_would_close_a_cycle():
    # The API task is already a prerequisite of the schema task, so "schema before API" must not be offered.
    plan = plan_parse(_plan(_epic("E1", _task("P", domain="api"), _task("S", "P", domain="database"))))

    assert plan_suggest_dependencies(plan) == []


def test_it_keeps_suggestions_quiet_when_the_layer_is_already_reached_transitively():
    plan = plan_parse(_plan(_epic(
        "E1", _task("S", domain="database"), _task("M", "S"), _task("P", "M", domain="api"),
    )))

    assert plan_suggest_dependencies(plan) == []
