"""The plan's invariants hold in the database itself, and task moves follow one table."""

from __future__ import annotations

import threading

import pytest
from django.db import IntegrityError, connection, transaction

from apps.core.errors import ConflictError, InvalidTransitionError, ValidationError
from apps.projects.models import Epic, Project, Task, TaskDependency
from apps.projects.services import project_create, task_transition
from apps.projects.transitions import TASK_TRANSITIONS

pytestmark = pytest.mark.django_db


def _task(planned_project, key: str) -> Task:
    return Task.objects.get(project=planned_project, key=key)


def test_the_database_refuses_a_self_dependency(planned_project):
    t1 = _task(planned_project, "T1")

    with pytest.raises(IntegrityError), transaction.atomic():
        TaskDependency.objects.create(task=t1, depends_on=t1)


def test_the_database_refuses_an_unknown_status(planned_project):
    with pytest.raises(IntegrityError), transaction.atomic():
        Task.objects.filter(key="T1").update(status="sleeping")


def test_the_database_refuses_a_duplicate_task_key_in_one_project(planned_project):
    epic = Epic.objects.filter(project=planned_project).first()

    with pytest.raises(IntegrityError), transaction.atomic():
        Task.objects.create(project=planned_project, epic=epic, key="T1", title="again")


def test_the_same_key_may_exist_in_two_projects(planned_project, owner, example_plan):
    from apps.projects.plan import plan_import

    other = project_create(owner=owner, name="Other")
    plan_import(project=other, data=example_plan)

    assert Task.objects.filter(key="T1").count() == 2


def test_the_database_refuses_done_without_a_completion_time(planned_project):
    with pytest.raises(IntegrityError), transaction.atomic():
        Task.objects.filter(key="T1").update(status="done")


def test_every_status_has_a_row_in_the_transition_table():
    assert set(TASK_TRANSITIONS) == set(Task.Status.values)
    assert TASK_TRANSITIONS[Task.Status.DONE] == frozenset()


def test_a_legal_move_stamps_the_times(planned_project):
    task = _task(planned_project, "T1")

    task_transition(task=task, to="running")
    task_transition(task=task, to="merging")
    task_transition(task=task, to="done")

    task.refresh_from_db()
    assert task.status == "done" and task.started_at and task.completed_at


@pytest.mark.parametrize(("start", "target"), [("pending", "done"), ("ready", "merging"), ("pending", "running")])
def test_an_illegal_move_is_refused_with_the_allowed_ones(planned_project, start, target):
    task = _task(planned_project, "T2")
    Task.objects.filter(pk=task.pk).update(status=start)
    task.refresh_from_db()

    with pytest.raises(InvalidTransitionError, match=f"from {start} to {target}; allowed: "):
        task_transition(task=task, to=target)
    task.refresh_from_db()
    assert task.status == start


def test_an_unknown_target_status_is_a_validation_error(planned_project):
    with pytest.raises(ValidationError, match="unknown task status"):
        task_transition(task=_task(planned_project, "T1"), to="sleeping")


def test_a_stale_copy_loses_the_race(planned_project):
    first, second = _task(planned_project, "T1"), _task(planned_project, "T1")

    task_transition(task=first, to="running")
    with pytest.raises(ConflictError, match="changed while moving"):
        task_transition(task=second, to="running")


def test_project_create_derives_the_slug_and_repository(owner, settings):
    project = project_create(owner=owner, name="My Shop 2")

    assert project.slug == "my-shop-2"
    assert project.repo_path == str(settings.PROJECTS_ROOT / "my-shop-2" / "repo")
    assert project.status == Project.Status.DRAFT


def test_project_create_refuses_a_path_that_is_not_a_repository(staff, tmp_path):
    with pytest.raises(ValidationError, match="not a git repository"):
        project_create(owner=staff, name="Elsewhere", repo_path=str(tmp_path))


def test_only_staff_may_point_a_project_at_an_existing_repository(owner, tmp_path):
    from apps.core.errors import PermissionDeniedError

    with pytest.raises(PermissionDeniedError, match="only staff"):
        project_create(owner=owner, name="Elsewhere", repo_path=str(tmp_path))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_only_one_of_many_concurrent_claims_wins(planned_project):
    """Eight threads with their own connections race to start the same ready task: exactly one wins."""
    task_id = _task(planned_project, "T1").pk
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def claim() -> None:
        task = Task.objects.get(pk=task_id)
        barrier.wait()
        try:
            task_transition(task=task, to="running")
            outcomes.append("won")
        except ConflictError:
            outcomes.append("lost")
        finally:
            connection.close()

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["lost"] * 7 + ["won"]
    assert Task.objects.get(pk=task_id).status == "running"
