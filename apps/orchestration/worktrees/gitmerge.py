"""Merging a worktree's branch back into the default branch, in git: conflict checks, the merge (or squash), the
merge candidate built on a detached HEAD and moved onto main by compare-and-swap, and restoring main's working
copy. The durable merge that drives these steps is `apps/orchestration/merging.py`."""

from __future__ import annotations

from pathlib import Path

from apps.core.errors import GitError, ValidationError
from apps.orchestration.repository import check_config as _check_config
from apps.orchestration.repository import current_branch as _current_branch
from apps.orchestration.repository import git_failure as _failure
from apps.orchestration.repository import git_out as _git
from apps.orchestration.repository import git_run as _run
from apps.orchestration.worktrees.gitops import (
    WorktreeConflictError,
    check_branch_name,
    check_revision,
    head,
    is_clean,
    worktree_branch,
)

TIP_TRAILER = "YokeFlow-Branch-Tip"  # names the branch commit a merge commit brings in
RESOLVE_SIDES = ("ours", "theirs", "manual")
MERGE_STRATEGIES = ("merge", "squash")


def conflicts(repo_path: Path, branch: str, *, into: str = "main") -> list[str]:
    """The files that would conflict if `branch` were merged into `into`; [] when it merges cleanly.

    `git merge-tree` merges in the object store only: no working tree or index is touched.
    """
    repo_path = Path(repo_path)
    _check_config(repo_path)
    check_revision(into)
    check_branch_name(repo_path, branch)
    return _merge_tree(repo_path, into, branch)


def _merge_tree(cwd: Path, into: str, branch: str) -> list[str]:
    args = ("merge-tree", "--write-tree", "--name-only", "--no-messages", "-z", into, branch)
    done = _run(cwd, *args)
    if done.returncode not in (0, 1):  # 1 means conflicts; anything else is a failure
        raise _failure(args, done)
    # -z output: the merged tree's id, then one NUL-terminated name per conflicted file.
    return [name for name in done.stdout.split("\0")[1:] if name] if done.returncode == 1 else []


def merge(repo_path: Path, branch: str, *, into: str = "main", strategy: str = "merge", message: str) -> str:
    """Merge `branch` into `into` in the main repository; returns `into`'s new HEAD.

    A merge that would conflict raises WorktreeConflictError before anything changes.
    """
    return _merge_now(Path(repo_path), branch, into=into, message=message, strategy=strategy)


def resolve(repo_path: Path, branch: str, *, into: str = "main", side: str, message: str) -> str:
    """Merge `branch` into `into`, settling conflicting hunks in favour of one side; returns the new HEAD.

    "ours" keeps `into`'s version, "theirs" the branch's; "manual" is for a person: fix it in the worktree
    (e.g. edit, commit) and call merge again.
    """
    return _merge_now(Path(repo_path), branch, into=into, message=message, side=side)


def _merge_now(repo_path: Path, branch: str, *, into: str, message: str, strategy: str = "merge",
               side: str | None = None) -> str:
    """Build the merge and move `into` to it at once (no test in between)."""
    check_revision(into)
    base = _git(repo_path, "rev-parse", "--verify", f"refs/heads/{into}").strip()
    head = merge_candidate(repo_path, branch, into=into, strategy=strategy, side=side, message=message)
    advance(repo_path, into=into, to=head, expected=base)
    return head


def merge_candidate(repo_path: Path, branch: str, *, into: str = "main", strategy: str = "merge",
                    side: str | None = None, message: str) -> str:
    """Build the merge of `branch` into `into` on a detached HEAD at `into`'s tip and return its commit.

    `into` itself does not move (see `advance`): the candidate can be tested first, and a crash in between leaves
    the default branch as it was. With `side` ("ours"/"theirs") conflicting hunks are settled for that side;
    without it a merge that would conflict raises WorktreeConflictError before anything changes.
    """
    if strategy not in MERGE_STRATEGIES:
        raise ValidationError(f"strategy must be one of {', '.join(MERGE_STRATEGIES)}", code="invalid_strategy")
    if side is not None and side not in RESOLVE_SIDES:
        raise ValidationError(f"side must be one of {', '.join(RESOLVE_SIDES)}", code="invalid_side")
    if side == "manual":
        raise GitError(f"resolve the conflicts of {branch} in its worktree, commit, and merge again",
                       code="manual_resolution", recoverable=True)
    repo_path = Path(repo_path)
    files = [] if side else conflicts(repo_path, branch, into=into)
    if files:
        raise WorktreeConflictError(files, f"merging {branch} into {into} would conflict in {', '.join(files)}")
    _check_config(repo_path)
    check_branch_name(repo_path, branch)
    _check_main(repo_path, into)
    _git(repo_path, "checkout", "-q", "--detach", into)
    try:
        if strategy == "squash" and not side:
            return _squash(repo_path, branch, message)
        _merge_or_restore(repo_path, *_merge_args(message), *(("-X", side) if side else ()), branch)
        return head(repo_path)
    except BaseException:
        _git(repo_path, "checkout", "-q", "-f", into)
        raise


def advance(repo_path: Path, *, into: str, to: str, expected: str) -> None:
    """Move `into` from `expected` to `to` in one compare-and-swap and check it out again; refuses if `into` moved
    meanwhile (nothing changes then)."""
    repo_path = Path(repo_path)
    check_revision(into)
    done = _run(repo_path, "update-ref", "-m", "yokeflow: merge", f"refs/heads/{into}", to, expected)
    if done.returncode != 0:
        raise GitError(f"{into} moved while a merge was being tested (expected {expected[:12]})", code="main_moved",
                       recoverable=True)
    _git(repo_path, "checkout", "-q", "-f", into)
    _git(repo_path, "clean", "-q", "-f", "-d")  # what the tests on the candidate left behind


def main_restore(repo_path: Path, *, into: str = "main") -> str:
    """Put the main repository's working copy back on `into`, exactly at its tip; returns that tip.

    YokeFlow owns this copy: a merge cut off by a crash may have left it detached, half-merged or holding test
    output. Ignored files (such as `.env`) stay.
    """
    repo_path = Path(repo_path)
    _check_config(repo_path)
    check_revision(into)
    _run(repo_path, "merge", "--abort")  # fails harmlessly when no merge is in progress
    _git(repo_path, "checkout", "-q", "-f", into)
    _git(repo_path, "reset", "-q", "--hard", into)
    _git(repo_path, "clean", "-q", "-f", "-d")
    return head(repo_path)


def merged_by(repo_path: Path, tip: str, *, into: str = "main") -> str | None:
    """The commit on `into`'s first-parent line that merged branch tip `tip` (found by its `YokeFlow-Branch-Tip`
    trailer, so squash merges are found too); None when there is none."""
    check_revision(into)
    found = _git(Path(repo_path), "log", "--first-parent", "--format=%H", "-F",
                 f"--grep={TIP_TRAILER}: {tip}", "-n", "1", into, "--").strip()
    return found or None


def _merge_args(message: str) -> tuple[str, ...]:
    # --no-edit: never an editor; --no-verify-signatures: a repository config must not make merges fail.
    return ("merge", "--no-ff", "--no-edit", "--no-verify", "--no-verify-signatures", "-m", message)


def _check_main(repo_path: Path, into: str) -> None:
    head = _current_branch(repo_path)
    if head != into:
        raise GitError(f"the repository at {repo_path} is on {head or 'a detached HEAD'}, not {into}",
                       code="wrong_branch")
    if not is_clean(repo_path):
        raise GitError(f"the repository at {repo_path} has uncommitted changes", code="main_dirty", recoverable=True)


def _squash(repo_path: Path, branch: str, message: str) -> str:
    _merge_or_restore(repo_path, "merge", "--squash", "--no-verify-signatures", branch)
    if not _git(repo_path, "diff", "--cached", "--name-only").strip():
        return head(repo_path)  # the branch brings nothing new: no empty commit
    _git(repo_path, "commit", "--no-verify", "-q", "-m", message)
    return head(repo_path)


def _merge_or_restore(cwd: Path, *args: str) -> None:
    """Run a merge; if it fails, put HEAD, index and working tree back as they were and raise."""
    before = head(cwd)
    done = _run(cwd, *args)
    if done.returncode == 0:
        return
    unmerged = sorted(set(_git(cwd, "diff", "--name-only", "--diff-filter=U", "-z").split("\0")) - {""})
    _run(cwd, "merge", "--abort")  # fails harmlessly when no merge is in progress (squash, refused merge)
    _git(cwd, "reset", "-q", "--hard", before)
    if unmerged:
        raise WorktreeConflictError(unmerged)
    raise _failure(args, done)


def sync_from(path: Path, *, base: str = "main") -> str:
    """Merge `base` into the worktree's branch; on a conflict nothing changes. Returns the new HEAD."""
    path = Path(path)
    _check_config(path)
    check_revision(base)
    branch = worktree_branch(path)
    if _git(path, "status", "--porcelain", "--untracked-files=no").strip():
        raise GitError(f"commit or discard the changes in {path} before syncing", code="worktree_dirty",
                       recoverable=True)
    files = _merge_tree(path, base, branch)
    if files:
        raise WorktreeConflictError(files, f"merging {base} into {branch} would conflict in {', '.join(files)}")
    _merge_or_restore(path, "merge", "--no-edit", "--no-verify", "--no-verify-signatures", base)
    return head(path)
