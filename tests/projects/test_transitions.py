"""The status tables of the run, epics and worktrees: allowed moves land (once, with their event), the rest are
refused with what is allowed, and a writer holding a stale copy re-reads instead of overwriting a newer move."""

from __future__ import annotations

import pytest

from apps.core.errors import InvalidTransitionError, ValidationError
from apps.orchestration.models import Worktree
from apps.orchestration.worktrees import worktree_status_move
from apps.projects.models import Epic, EventKind, Project, ProjectEvent
from apps.projects.services import epic_status_move, project_status_move
from apps.projects.transitions import EPIC_TRANSITIONS, PROJECT_TRANSITIONS

pytestmark = pytest.mark.django_db


def run_events(project: Project) -> list[tuple[str, str]]:
    rows = ProjectEvent.objects.filter(project=project, kind=EventKind.RUN_STATUS).order_by("pk")
    return [(row.payload["previous"], row.payload["status"]) for row in rows]


def test_every_status_has_a_row_and_every_target_is_a_status():
    for table, statuses in ((PROJECT_TRANSITIONS, Project.Status.values), (EPIC_TRANSITIONS, Epic.Status.values)):
        assert set(table) == set(statuses)
        assert all(targets <= set(statuses) for targets in table.values())


def test_a_run_moves_through_its_table_with_one_event_per_change(planned_project):
    assert project_status_move(project=planned_project, to="running") is True
    assert project_status_move(project=planned_project, to="running") is False  # a repeat is no change, no event
    assert project_status_move(project=planned_project, to="completed") is True

    planned_project.refresh_from_db()
    assert planned_project.status == "completed"
    assert run_events(planned_project) == [("draft", "planned"), ("planned", "running"), ("running", "completed")]


def test_a_move_the_table_does_not_allow_is_refused_and_changes_nothing(planned_project):
    before = run_events(planned_project)
    with pytest.raises(InvalidTransitionError) as refused:
        project_status_move(project=planned_project, to="completed")

    assert "cannot go from planned to completed" in refused.value.message
    assert refused.value.details["allowed"] == ["archived", "paused", "running"]
    planned_project.refresh_from_db()
    assert planned_project.status == "planned" and run_events(planned_project) == before
    with pytest.raises(ValidationError):
        project_status_move(project=planned_project, to="finished")


def test_a_stale_copy_moves_on_from_where_the_row_is_now(planned_project):
    stale = Project.objects.get(pk=planned_project.pk)
    project_status_move(project=planned_project, to="running")
    project_status_move(project=planned_project, to="paused")

    # The stale copy still says "planned": its move to running is made from paused, the row's real status.
    assert project_status_move(project=stale, to="running") is True
    assert run_events(planned_project)[-1] == ("paused", "running")


def test_a_stale_copy_cannot_undo_a_final_move(planned_project):
    project_status_move(project=planned_project, to="running")
    stale = Project.objects.get(pk=planned_project.pk)
    project_status_move(project=planned_project, to="completed")

    with pytest.raises(InvalidTransitionError, match="from completed to failed"):
        project_status_move(project=stale, to="failed")  # completed → failed is not a move
    planned_project.refresh_from_db()
    assert planned_project.status == "completed" and stale.status == "completed"


def test_an_epic_starts_finishes_and_stays_done(planned_project):
    epic = planned_project.epics.order_by("position").first()
    assert epic_status_move(epic=epic, to="in_progress") and epic_status_move(epic=epic, to="done")
    assert epic_status_move(epic=epic, to="done") is False

    with pytest.raises(InvalidTransitionError, match="allowed: none"):
        epic_status_move(epic=epic, to="in_progress")
    assert Epic.objects.get(pk=epic.pk).status == "done"


def test_a_worktree_ends_merged_or_removed_and_a_status_move_writes_its_other_fields(planned_project):
    epic = planned_project.epics.order_by("position").first()
    worktree = Worktree.objects.create(project=planned_project, epic=epic, branch="epic-a", path="/nowhere",
                                       base_commit="0" * 40)
    worktree_status_move(worktree, "conflict", conflict_files=["app.py"])
    worktree_status_move(worktree, "conflict", conflict_files=["app.py", "db.py"])  # same status, new files
    worktree_status_move(worktree, "merged", conflict_files=[])

    with pytest.raises(InvalidTransitionError, match="from merged to active"):
        worktree_status_move(worktree, "active")
    row = Worktree.objects.get(pk=worktree.pk)
    assert (row.status, row.conflict_files) == ("merged", [])
