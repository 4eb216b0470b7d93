"""Records of parallel runs: the worktrees agents work in, and the batches of the plan view."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from apps.core.models import BaseModel, in_choices
from apps.projects.models import Epic, Project, Task


class WorktreeStatus(models.TextChoices):
    ACTIVE = "active", "active (agents work here)"
    CONFLICT = "conflict", "conflict (waiting for a resolution)"
    MERGED = "merged", "merged into the default branch"
    REMOVED = "removed", "removed without merging"


LIVE_WORKTREE = (WorktreeStatus.ACTIVE, WorktreeStatus.CONFLICT)
W = WorktreeStatus
# A worktree lives (active, or in conflict until a person resolves it) and ends merged or removed; a merged one
# whose directory is cleaned up stays merged. `worktrees.records.worktree_status_move` consults this table.
WORKTREE_TRANSITIONS: dict[str, frozenset[str]] = {
    W.ACTIVE: frozenset({W.CONFLICT, W.MERGED, W.REMOVED}),
    W.CONFLICT: frozenset({W.ACTIVE, W.MERGED, W.REMOVED}),
    W.MERGED: frozenset(),
    W.REMOVED: frozenset(),
}
del W


class MergeStep(models.TextChoices):
    """How far the durable merge of a worktree got; every step is recorded once it is complete."""

    NONE = "", "not started"
    COMMITTED = "committed", "work committed on the branch"
    VERIFIED = "verified", "merge candidate tested on top of the default branch"
    MERGED = "merged", "the default branch moved to the merge commit"
    DONE = "done", "its tasks are done"
    CLEANED = "cleaned", "worktree and branch removed"


class Worktree(BaseModel):
    """One branch with its own working directory. In the `ready` strategy a worktree belongs to one task; in the
    `batch` strategy the tasks of one epic in one batch share it."""

    Status = WorktreeStatus
    Step = MergeStep
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="worktrees")
    epic = models.ForeignKey(Epic, on_delete=models.CASCADE, related_name="worktrees")
    task = models.ForeignKey(Task, on_delete=models.SET_NULL, null=True, blank=True, related_name="worktrees")
    branch = models.CharField(max_length=200)
    path = models.CharField(max_length=1024)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    base_commit = models.CharField(max_length=64, blank=True)
    merge_commit = models.CharField(max_length=64, blank=True)
    # Tasks whose committed work waits in this branch to be merged (the merge marks them done).
    merge_task_ids = models.JSONField(default=list, blank=True)
    conflict_files = models.JSONField(default=list, blank=True)
    port_base = models.PositiveIntegerField(null=True, blank=True)
    port_count = models.PositiveSmallIntegerField(default=0)
    setup_log = models.TextField(blank=True)
    merged_at = models.DateTimeField(null=True, blank=True)
    removed_at = models.DateTimeField(null=True, blank=True)
    # The durable merge (apps/orchestration/merging.py): the last completed step, the branch tip it merges, the
    # tested candidate commit, and the lease of the worker finishing it (expired = the reaper resumes it).
    merge_step = models.CharField(max_length=10, choices=MergeStep.choices, default=MergeStep.NONE, blank=True)
    merge_tip = models.CharField(max_length=64, blank=True)
    merge_candidate = models.CharField(max_length=64, blank=True)
    merge_owner = models.CharField(max_length=200, blank=True)
    merge_heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["project", "-created"]
        constraints = [
            models.CheckConstraint(condition=in_choices("status", WorktreeStatus), name="worktree_status_valid"),
            models.CheckConstraint(condition=in_choices("merge_step", MergeStep), name="worktree_merge_step_valid"),
            # One live worktree per branch, and never two live worktrees on one port range (on any project:
            # ports belong to the machine).
            models.UniqueConstraint(fields=["project", "branch"], condition=Q(status__in=LIVE_WORKTREE),
                                    name="worktree_live_branch_unique"),
            models.UniqueConstraint(fields=["port_base"],
                                    condition=Q(status__in=LIVE_WORKTREE, port_base__isnull=False),
                                    name="worktree_live_port_unique"),
        ]
        indexes = [models.Index(fields=["project", "status"], name="worktree_project_status")]

    def __str__(self) -> str:
        return f"{self.branch} ({self.status})"

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_WORKTREE

    @property
    def ports(self) -> range:
        return range(self.port_base or 0, (self.port_base or 0) + (self.port_count if self.port_base else 0))


class BatchStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"


class ParallelBatch(BaseModel):
    """One Kahn batch of the plan (tasks whose hard dependencies lie in earlier batches), with its progress."""

    Status = BatchStatus
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="batches")
    number = models.PositiveIntegerField()
    task_ids = models.JSONField(default=list)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["project", "number"]
        verbose_name_plural = "parallel batches"
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="batch_number_unique"),
            models.CheckConstraint(condition=in_choices("status", BatchStatus), name="batch_status_valid"),
        ]

    def __str__(self) -> str:
        return f"batch {self.number} ({self.status})"
