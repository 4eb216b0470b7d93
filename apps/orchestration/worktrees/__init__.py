"""Worktrees: their records, naming, bootstrap, ports, lock and reconciliation (`records.py`), and the git they
run (`gitops.py`; merging back in `gitmerge.py`)."""

from apps.orchestration.worktrees import gitmerge, gitops
from apps.orchestration.worktrees.records import (
    MAX_SETUP_LOG,
    ProjectReconciliation,
    branch_for,
    path_for,
    ports_allocate,
    repo_lock,
    session_home,
    worktree_env,
    worktree_find,
    worktree_git_status,
    worktree_prepare,
    worktree_remove,
    worktree_status_move,
    worktrees_reconcile,
)

__all__ = [
    "gitmerge",
    "gitops",
    "MAX_SETUP_LOG",
    "ProjectReconciliation",
    "branch_for",
    "path_for",
    "ports_allocate",
    "repo_lock",
    "session_home",
    "worktree_env",
    "worktree_find",
    "worktree_git_status",
    "worktree_prepare",
    "worktree_remove",
    "worktree_status_move",
    "worktrees_reconcile",
]
