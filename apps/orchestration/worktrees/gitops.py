"""Git worktrees for parallel work: one branch and one working directory per unit of work, merged back into the
project's default branch. This is the git layer only; `records.py` keeps the `Worktree` rows, `gitmerge.py` merges back.

Layout: the main repository (a normal clone with a working tree) is `<root>/repo`; worktrees live in
`<root>/worktrees/<branch with "/" -> "__">`.
"""

from __future__ import annotations

import re
import shutil
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from apps.core.errors import Category, GitError
from apps.orchestration.repository import check_config as _check_config
from apps.orchestration.repository import current_branch as _current_branch
from apps.orchestration.repository import git_failure as _failure
from apps.orchestration.repository import git_out as _git
from apps.orchestration.repository import git_run as _run

WORKTREES_DIR = "worktrees"
BRANCH_MAX = 200
_RESERVED = frozenset({"con", "prn", "aux", "nul", *(f"com{n}" for n in range(1, 10)),
                       *(f"lpt{n}" for n in range(1, 10))})


class WorktreeConflictError(GitError):
    """Merging would conflict; nothing was changed. `files` are the conflicted paths."""

    category = Category.CONFLICT  # a person decides (409), not a server fault
    code = "merge_conflict"
    recoverable = True

    def __init__(self, files: list[str], message: str | None = None) -> None:
        self.files = list(files)
        super().__init__(message or f"merge conflict in {', '.join(self.files) or 'the working tree'}",
                         details={"files": self.files})


@dataclass(frozen=True)
class WorktreeInfo:
    path: Path
    branch: str | None
    head: str
    locked: bool
    prunable: bool
    detached: bool


@dataclass
class Reconciliation:
    pruned: list[str] = field(default_factory=list)  # stale registrations git pruned, and stray directories removed
    missing_dirs: list[str] = field(default_factory=list)  # known branches without a worktree
    unknown: list[Path] = field(default_factory=list)  # worktrees on branches nobody knows about; left in place


# --------------------------------------------------------------------------------------------------
# Branch names and paths
# --------------------------------------------------------------------------------------------------


def branch_name(*parts: str, prefix: str = "yf") -> str:
    """A valid, portable branch name: `prefix/part1-part2-…`, e.g. ("E1", "Storage layer") -> "yf/e1-storage-layer".

    Parts are joined with "-" into one component rather than with "/": git cannot hold both `yf/e1` and
    `yf/e1/t3` (a ref is a file and a directory at once), so nesting task branches under epic branches would fail.
    """
    tail = _component("-".join(parts))
    if not tail:
        raise GitError(f"no usable branch name in {parts!r}", code="invalid_branch")
    head = [c for c in (_component(p) for p in prefix.split("/")) if c]
    name = "/".join([*head, tail])
    if len(name) > BRANCH_MAX:
        name = _shorten(name)
    if len(name) <= len("/".join(head)):
        raise GitError(f"no usable branch name in {parts!r} under prefix {prefix!r}", code="invalid_branch")
    return name


def _component(text: str) -> str:
    """One path component of a ref, restricted to [a-z0-9._-] so it is valid for git and for every filesystem."""
    text = "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c))
    text = re.sub(r"[^a-z0-9._-]+", "-", text)
    text = re.sub(r"\.{2,}", "-", text)
    text = re.sub(r"_{2,}", "_", text)  # "__" encodes "/" in worktree directory names; keep that unambiguous
    text = re.sub(r"-{2,}", "-", text).strip("-._")
    if text.endswith(".lock"):
        text = text[: -len(".lock")] + "-lock"
    stem = text.split(".")[0]
    if stem in _RESERVED:  # Windows refuses these even with an extension: "con.txt" is still CON
        text = stem + "_" + text[len(stem):]
    return text


def _shorten(name: str) -> str:
    # One character is kept in reserve for the "_" a reserved name may need after cutting.
    cut = name[: BRANCH_MAX - 1]
    boundary = max(cut.rfind("-"), cut.rfind("/"))
    if boundary > BRANCH_MAX // 2:  # a word boundary close enough to the limit; otherwise cut mid-word
        cut = cut[:boundary]
    return "/".join(c for c in (_component(p) for p in cut.split("/")) if c)


def worktree_path(repo_path: Path, branch: str) -> Path:
    """Where `branch`'s worktree lives: `<root>/worktrees/<branch with "/" -> "__">`."""
    components = branch.split("/")
    # A component starting with "." could make the directory "." or ".."; git refuses such branches anyway.
    if not branch or any(not c or c.startswith(".") for c in components) or "\0" in branch:
        raise GitError(f"{branch!r} is not a valid branch name", code="invalid_branch")
    return Path(repo_path).parent / WORKTREES_DIR / "__".join(components)


# --------------------------------------------------------------------------------------------------
# Running git
# --------------------------------------------------------------------------------------------------


def check_branch_name(cwd: Path, branch: str) -> None:
    if _run(cwd, "check-ref-format", "--branch", branch).returncode != 0 or branch.startswith("-"):
        raise GitError(f"{branch!r} is not a valid branch name", code="invalid_branch")


def check_revision(revision: str) -> None:
    # Revisions are passed where git also accepts options; one starting with "-" would be read as an option.
    if not revision or revision.startswith("-"):
        raise GitError(f"{revision!r} is not a valid revision", code="invalid_branch")


def _branch_exists(cwd: Path, branch: str) -> bool:
    return _run(cwd, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}").returncode == 0


def head(cwd: Path) -> str:
    return _git(cwd, "rev-parse", "HEAD").strip()


def is_clean(cwd: Path) -> bool:
    return not _git(cwd, "status", "--porcelain").strip()


# --------------------------------------------------------------------------------------------------
# Listing and creating worktrees
# --------------------------------------------------------------------------------------------------


def worktree_list(repo_path: Path) -> list[WorktreeInfo]:
    """The registered worktrees, without the main one."""
    output = _git(Path(repo_path), "worktree", "list", "--porcelain", "-z")
    blocks = [block for block in output.split("\0\0") if block.strip("\0")]
    return [_parse_worktree(block) for block in blocks[1:]]


def _parse_worktree(block: str) -> WorktreeInfo:
    fields: dict[str, str] = {}
    for line in block.strip("\0").split("\0"):
        key, _, value = line.partition(" ")
        fields[key] = value
    branch = fields.get("branch")
    return WorktreeInfo(path=Path(fields["worktree"]), branch=branch.removeprefix("refs/heads/") if branch else None,
                        head=fields.get("HEAD", ""), locked="locked" in fields, prunable="prunable" in fields,
                        detached="detached" in fields)


def worktree_create(repo_path: Path, branch: str, *, base: str = "main") -> Path:
    """The worktree for `branch` (created from `base` if the branch is new); an existing one is reused as it is."""
    repo_path = Path(repo_path)
    _check_config(repo_path)
    check_branch_name(repo_path, branch)
    check_revision(base)
    path = worktree_path(repo_path, branch)
    registered = _registered_at(repo_path, path)
    if registered is not None and not registered.prunable:
        if registered.branch != branch:
            raise GitError(f"{path} is the worktree of {registered.branch or 'a detached HEAD'}, not {branch}",
                           code="worktree_path_taken")
        return path
    _clear_stale(repo_path, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if _branch_exists(repo_path, branch):  # keep the branch's commits: attach, never reset
        _git(repo_path, "worktree", "add", "--quiet", str(path), branch)
    else:
        _git(repo_path, "worktree", "add", "--quiet", "-b", branch, str(path), base)
    return path


def _registered_at(repo_path: Path, path: Path) -> WorktreeInfo | None:
    wanted = path.resolve()
    return next((info for info in worktree_list(repo_path) if info.path.resolve() == wanted), None)


def _clear_stale(repo_path: Path, path: Path) -> None:
    """Forget registrations whose directory is gone and delete a directory no registration owns."""
    _git(repo_path, "worktree", "prune")
    if _registered_at(repo_path, path) is None:
        _remove_dir(path)


def _remove_dir(path: Path) -> None:
    if path.is_symlink() or path.is_file():  # never follow a link out of the worktrees directory
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


# --------------------------------------------------------------------------------------------------
# Working in a worktree
# --------------------------------------------------------------------------------------------------


def worktree_status(path: Path, *, base: str = "main") -> dict:
    """Branch, HEAD, uncommitted changes and how far the branch is ahead of and behind `base`."""
    path = Path(path)
    _check_config(path)
    check_revision(base)
    changed = _changed_files(path)
    counts = _git(path, "rev-list", "--left-right", "--count", f"{base}...HEAD").split()
    return {"branch": _current_branch(path), "head": head(path), "dirty": bool(changed), "changed": changed,
            "ahead": int(counts[1]), "behind": int(counts[0])}


def _changed_files(path: Path) -> list[str]:
    entries = iter(_git(path, "status", "--porcelain=v1", "-z", "--untracked-files=all").split("\0"))
    files = []
    for entry in entries:
        if not entry:
            continue
        files.append(entry[3:])
        if entry[0] in "RC":  # a rename or copy is followed by its source path
            next(entries, None)
    return files


def worktree_commit(path: Path, message: str) -> str | None:
    """Stage everything and commit on the worktree's branch; None when nothing changed."""
    path = Path(path)
    _check_config(path)
    worktree_branch(path)
    _git(path, "add", "-A")
    if not _git(path, "diff", "--cached", "--name-only").strip():
        return None
    _git(path, "commit", "--no-verify", "-q", "-m", message)
    return head(path)


def worktree_branch(path: Path) -> str:
    """The branch checked out in the worktree at `path`, refusing one the agent switched to.

    The directory name encodes the branch, so a worktree whose HEAD moved to another branch (or was detached)
    no longer matches its path.
    """
    branch = _current_branch(path)
    common = Path(_git(path, "rev-parse", "--path-format=absolute", "--git-common-dir").strip())
    if branch is None or worktree_path(common.parent, branch).resolve() != path.resolve():
        raise GitError(f"refusing to work in {path}: HEAD is on {branch or 'a detached HEAD'}, not the worktree's "
                       "branch (the agent must not switch branches)", code="wrong_branch")
    return branch


# --------------------------------------------------------------------------------------------------
# Removing and reconciling
# --------------------------------------------------------------------------------------------------


def worktree_remove(repo_path: Path, branch: str, *, delete_branch: bool = True, force: bool = False) -> None:
    """Remove `branch`'s worktree and (by default) the branch; what is already gone is not an error."""
    repo_path = Path(repo_path)
    _check_config(repo_path)
    check_branch_name(repo_path, branch)
    for info in _worktrees_of(repo_path, branch):
        _remove_worktree(repo_path, info.path, force=force)
    _git(repo_path, "worktree", "prune")  # a registration whose directory is gone still holds the branch
    if delete_branch and _branch_exists(repo_path, branch):
        _git(repo_path, "branch", "-D", branch)


def _worktrees_of(repo_path: Path, branch: str) -> list[WorktreeInfo]:
    """Registered worktrees with a directory that hold `branch` or sit at its path."""
    path = worktree_path(repo_path, branch).resolve()
    return [info for info in worktree_list(repo_path)
            if (info.branch == branch or info.path.resolve() == path) and info.path.is_dir()]


def _remove_worktree(repo_path: Path, path: Path, *, force: bool) -> None:
    if not force and not is_clean(path):
        raise GitError(f"{path} has uncommitted changes; commit them or remove with force", code="worktree_dirty",
                       recoverable=True)
    # Given twice, --force also removes a locked worktree.
    _git(repo_path, "worktree", "remove", *(("--force", "--force") if force else ()), str(path))


def reconcile(repo_path: Path, *, known_branches: set[str]) -> Reconciliation:
    """Bring git's worktree records and the worktrees directory in line, and report what does not match.

    Stale registrations are pruned and stray directories removed (both reported in `pruned`); worktrees on
    branches outside `known_branches` are only reported, since they may hold someone's work.
    """
    repo_path = Path(repo_path)
    result = Reconciliation(pruned=_prune(repo_path))
    infos = [info for info in worktree_list(repo_path) if info.path.is_dir()]
    root = (repo_path.parent / WORKTREES_DIR).resolve()
    result.unknown = sorted(info.path for info in infos
                            if info.path.resolve().parent == root and info.branch not in known_branches)
    present = {info.branch for info in infos}
    result.missing_dirs = sorted(branch for branch in known_branches if branch not in present)
    result.pruned += _remove_strays(root, [info.path.resolve() for info in infos])
    return result


def _prune(repo_path: Path) -> list[str]:
    """Prune stale registrations; returns their names (git reports them on stderr as "Removing worktrees/<name>:")."""
    report = _run(repo_path, "worktree", "prune", "--dry-run", "--verbose").stderr
    names = re.findall(r"^Removing worktrees/([^:\n]+):", report, flags=re.MULTILINE)
    _git(repo_path, "worktree", "prune")
    return names


def _remove_strays(root: Path, registered: list[Path]) -> list[str]:
    if not root.is_dir():
        return []
    removed = []
    for entry in sorted(root.iterdir()):
        # A directory that holds a registered worktree further down is not stray.
        if any(path == entry or entry in path.parents for path in registered):
            continue
        if entry.is_dir() or entry.is_symlink():
            _remove_dir(entry)
            removed.append(entry.name)
    return removed


# --------------------------------------------------------------------------------------------------
# Refs
# --------------------------------------------------------------------------------------------------


def parents(repo_path: Path, commit: str) -> list[str]:
    check_revision(commit)
    return _git(Path(repo_path), "rev-list", "--parents", "-n", "1", commit, "--").split()[1:]


def is_ancestor(repo_path: Path, commit: str, *, of: str) -> bool:
    """Whether `commit` is reachable from `of` (so its work is on that branch)."""
    check_revision(commit)
    check_revision(of)
    done = _run(Path(repo_path), "merge-base", "--is-ancestor", commit, of)
    if done.returncode not in (0, 1):
        raise _failure(("merge-base", "--is-ancestor", commit, of), done)
    return done.returncode == 0


def branch_tip(repo_path: Path, branch: str) -> str | None:
    done = _run(Path(repo_path), "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}")
    return done.stdout.strip() if done.returncode == 0 else None
