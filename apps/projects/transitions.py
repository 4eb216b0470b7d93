"""The legal status moves of a project's run, its epics and its tasks. Each table is consulted by the one
function in `services` that moves that model (`project_status_move`, `epic_status_move`, `task_transition`)."""

from __future__ import annotations

from apps.projects.models import EpicStatus, ProjectStatus, TaskStatus

S = TaskStatus
# The only legal task moves. Everything that changes a task's status goes through
# `services.task_transition`, which consults this table and refuses anything else.
TASK_TRANSITIONS: dict[str, frozenset[str]] = {
    S.PENDING: frozenset({S.READY, S.BLOCKED, S.CANCELLED}),
    S.READY: frozenset({S.PENDING, S.RUNNING, S.BLOCKED, S.CANCELLED}),
    S.RUNNING: frozenset({S.MERGING, S.FAILED, S.PAUSED, S.CANCELLED, S.READY}),
    S.MERGING: frozenset({S.DONE, S.PAUSED, S.FAILED, S.CANCELLED}),
    S.PAUSED: frozenset({S.READY, S.RUNNING, S.MERGING, S.FAILED, S.CANCELLED}),
    S.FAILED: frozenset({S.READY, S.CANCELLED}),
    S.BLOCKED: frozenset({S.PENDING, S.READY, S.CANCELLED}),
    S.CANCELLED: frozenset({S.PENDING}),
    S.DONE: frozenset(),
}
del S


P = ProjectStatus
# The run status's legal moves (`services.project_status_move`). A run starts from any settled state, stops as
# paused, completed or failed, and starts again; planning (re-)plans any project not running.
PROJECT_TRANSITIONS: dict[str, frozenset[str]] = {
    P.DRAFT: frozenset({P.PLANNED, P.RUNNING, P.ARCHIVED}),
    P.PLANNED: frozenset({P.RUNNING, P.PAUSED, P.ARCHIVED}),
    P.RUNNING: frozenset({P.PAUSED, P.COMPLETED, P.FAILED}),
    P.PAUSED: frozenset({P.RUNNING, P.PLANNED, P.COMPLETED, P.FAILED, P.ARCHIVED}),
    P.COMPLETED: frozenset({P.RUNNING, P.PLANNED, P.PAUSED, P.ARCHIVED}),
    P.FAILED: frozenset({P.RUNNING, P.PLANNED, P.PAUSED, P.COMPLETED, P.ARCHIVED}),
    P.ARCHIVED: frozenset({P.PLANNED}),
}
del P

E = EpicStatus
# An epic starts with its first claimed task and is done when its last task merged (`services.epic_status_move`).
EPIC_TRANSITIONS: dict[str, frozenset[str]] = {
    E.PENDING: frozenset({E.IN_PROGRESS, E.DONE, E.CANCELLED}),
    E.IN_PROGRESS: frozenset({E.DONE, E.CANCELLED, E.PENDING}),
    E.DONE: frozenset(),
    E.CANCELLED: frozenset({E.PENDING}),
}
del E
