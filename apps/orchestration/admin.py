"""Admin for runs: worktrees and batches, read-only (they change through runs, merges and the API)."""

from __future__ import annotations

from django.contrib import admin

from apps.agents.admin import ReadOnlyAdmin
from apps.orchestration.models import ParallelBatch, Worktree


@admin.register(Worktree)
class WorktreeAdmin(ReadOnlyAdmin):
    list_display = ["branch", "project", "epic", "task", "status", "port_base", "merge_commit", "created"]
    list_filter = ["status"]
    search_fields = ["branch", "project__slug", "epic__key", "task__key"]
    list_select_related = ["project", "epic", "task"]


@admin.register(ParallelBatch)
class ParallelBatchAdmin(ReadOnlyAdmin):
    list_display = ["project", "number", "status", "started_at", "completed_at"]
    list_filter = ["status"]
    search_fields = ["project__slug"]
    list_select_related = ["project"]
