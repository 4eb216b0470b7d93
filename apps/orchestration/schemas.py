"""Shapes of the runs API: worktrees, merges, parallel status and batches."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from ninja import Field, Schema

from apps.projects.models import RunStrategy


class WorktreeOut(Schema):
    id: int
    epic_id: int
    epic_key: str = Field(alias="epic.key")
    task_key: str | None = None
    branch: str
    path: str
    status: str
    base_commit: str
    merge_commit: str
    merge_task_ids: list[int]
    conflict_files: list[str]
    port_base: int | None
    port_count: int
    setup_log: str
    merged_at: datetime | None
    removed_at: datetime | None
    created: datetime
    git: dict | None = None  # branch, head, dirty, changed files, ahead/behind (live worktrees only)

    @staticmethod
    def resolve_task_key(obj) -> str | None:
        return obj.task.key if obj.task_id else None


class ConflictsOut(Schema):
    worktree_id: int
    branch: str
    into: str
    conflicts: bool
    files: list[str]


class ResolveIn(Schema):
    strategy: Literal["ours", "theirs", "manual"] = Field(
        description="ours: keep the default branch's side of conflicting hunks; theirs: keep the worktree's; "
                    "manual: fix it in the worktree yourself, commit, then POST …/merge")


class MergeOut(Schema):
    worktree_id: int
    status: str
    merged: str
    done: list[str]
    conflict_files: list[str]
    failures: list[str]
    epics_completed: list[str]


class ParallelStartIn(Schema):
    max_concurrency: int | None = Field(default=None, ge=1, le=64)
    strategy: RunStrategy | None = None
    parallel: bool = True


class BatchOut(Schema):
    number: int
    status: str
    task_ids: list[int]
    task_keys: list[str] = []
    total: int = 0
    done: int = 0
    running: int = 0
    started_at: datetime | None
    completed_at: datetime | None


class RunningOut(Schema):
    session_id: int
    task_key: str
    model: str
    turns: int
    started_at: datetime | None
    heartbeat_at: datetime | None


class ParallelStatusOut(Schema):
    project_id: int
    status: str
    parallel_enabled: bool
    strategy: str
    max_concurrency: int
    tasks: dict[str, int]
    running: list[RunningOut]
    current_batch: int | None
    batches_total: int
    batches_completed: int
    live_worktrees: int
    queued_jobs: int


class CancelOut(Schema):
    project_id: int
    status: str
    sessions: dict[str, int]
