"""Worktrees as records: where each task works, how a fresh worktree is bootstrapped, and the port ranges they hold.

`gitops` is the git layer; this module keeps `Worktree` rows in step with it. Everything that changes the
repository's refs or worktrees runs under `repo_lock`, a lock file per project that every process on the machine
(web, workers, commands) respects, so two workers never add, merge or remove at once.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.agents.sandbox import run_command, scrubbed_env
from apps.core.errors import ConflictError, GitError, NotFoundError, SandboxError
from apps.core.transitions import status_move
from apps.orchestration.models import LIVE_WORKTREE, WORKTREE_TRANSITIONS, Worktree
from apps.orchestration.repository import git_out, repo_ensure
from apps.orchestration.worktrees import gitops
from apps.projects.models import Epic, Project, Task

MAX_SETUP_LOG = 20_000


# ------------------------------------------------------------------------------------------------ the lock


@contextmanager
def repo_lock(project: Project, *, timeout: float | None = None) -> Iterator[None]:
    """Hold the project's repository lock (an advisory file lock, released by the kernel if the holder dies)."""
    timeout = settings.REPO_LOCK_TIMEOUT if timeout is None else timeout
    locks = Path(settings.PROJECTS_ROOT) / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    fd = os.open(locks / f"{project.slug}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ConflictError(f"the repository of {project.slug!r} stayed busy for {timeout:.0f} s "
                                        "(another merge or worktree change)", code="repository_busy") from None
                time.sleep(0.005)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


# ------------------------------------------------------------------------------------------------ naming


def branch_for(task: Task, *, shared_by_epic: bool) -> str:
    """The branch a task works on: its own, or its epic's when the epic's tasks share one worktree (batch)."""
    if shared_by_epic:
        return gitops.branch_name(task.epic.key, task.epic.title)
    return gitops.branch_name(task.key, task.title)


def path_for(project: Project, branch: str) -> Path:
    return gitops.worktree_path(Path(project.repo_path), branch)


def worktree_env(worktree: Worktree) -> dict[str, str]:
    """What the agent's commands see about their worktree: its branch and its own port range."""
    env = {"YF_WORKTREE_BRANCH": worktree.branch}
    if worktree.port_base:
        last = worktree.port_base + worktree.port_count - 1
        env |= {"PORT": str(worktree.port_base), "YF_PORT_BASE": str(worktree.port_base),
                "YF_PORT_COUNT": str(worktree.port_count), "YF_PORT_RANGE": f"{worktree.port_base}-{last}"}
    return env


# ------------------------------------------------------------------------------------------------ create


def worktree_prepare(*, task: Task, shared_by_epic: bool) -> Worktree:
    """The live worktree for `task` (reused if valid), created and bootstrapped on first use."""
    project = task.project
    branch = branch_for(task, shared_by_epic=shared_by_epic)
    repo = repo_ensure(project)
    with repo_lock(project):
        path = gitops.worktree_create(Path(repo.working_dir), branch, base=project.default_branch)
        worktree = Worktree.objects.filter(project=project, branch=branch, status__in=LIVE_WORKTREE).first()
        if worktree is not None:
            return worktree
        worktree = _record(task, branch, path, shared_by_epic=shared_by_epic)
    try:
        ports_allocate(worktree)
        _bootstrap(worktree)
    except (ConflictError, SandboxError) as exc:
        worktree_remove(worktree=worktree, force=True)
        raise SandboxError(f"could not prepare the worktree {branch}: {exc.message}", code="worktree_setup_failed",
                           recoverable=True) from None
    return worktree


def _record(task: Task, branch: str, path: Path, *, shared_by_epic: bool) -> Worktree:
    base = git_out(path, "rev-parse", "HEAD").strip()
    return Worktree.objects.create(project=task.project, epic=task.epic, task=None if shared_by_epic else task,
                                   branch=branch, path=str(path), base_commit=base)


def ports_allocate(worktree: Worktree) -> range:
    """Give the worktree the lowest free port range; the database refuses two live worktrees on one range."""
    start, end, count = settings.WORKTREE_PORT_START, settings.WORKTREE_PORT_END, settings.WORKTREE_PORT_COUNT
    for _ in range(20):  # another worker may take the same range between our read and our write
        used = set(Worktree.objects.filter(status__in=LIVE_WORKTREE, port_base__isnull=False)
                   .values_list("port_base", flat=True))
        base = next((b for b in range(start, end - count + 2, count) if b not in used), None)
        if base is None:
            raise ConflictError(f"every port range in {start}-{end} is held by a live worktree; merge or remove "
                                "some worktrees", code="no_free_ports")
        try:
            with transaction.atomic():
                Worktree.objects.filter(pk=worktree.pk).update(port_base=base, port_count=count)
        except IntegrityError:
            continue
        worktree.port_base, worktree.port_count = base, count
        return worktree.ports
    raise ConflictError("could not allocate a port range (too much contention); try again", code="no_free_ports")


def _bootstrap(worktree: Worktree) -> None:
    project = worktree.project
    copied = _copy_env_files(Path(project.repo_path), Path(worktree.path), project.env_files or [])
    log = [f"copied {name}" for name in copied]
    if project.setup_command.strip():
        home = session_home(Path(worktree.path))
        result = run_command(project.setup_command, cwd=worktree.path, timeout=float(settings.SETUP_TIMEOUT),
                             env=scrubbed_env(worktree_env(worktree), home=str(home)), network=project.network)
        log.append(result.as_text())
        if not result.ok:
            worktree.setup_log = "\n".join(log)[-MAX_SETUP_LOG:]
            worktree.save(update_fields=["setup_log", "updated"])
            raise SandboxError(f"the setup command failed: {result.as_text()[-500:]}", code="setup_failed")
    worktree.setup_log = "\n".join(log)[-MAX_SETUP_LOG:]
    worktree.save(update_fields=["setup_log", "updated"])


def _copy_env_files(repo: Path, target: Path, patterns: list[str]) -> list[str]:
    """Copy the untracked files matching `patterns` (e.g. `.env`) from the repository root; never from outside it."""
    copied = []
    root = repo.resolve()
    for pattern in patterns:
        if pattern.startswith("/") or ".." in Path(pattern).parts:
            continue
        for source in sorted(repo.glob(pattern)):
            real = source.resolve()
            if not source.is_file() or source.is_symlink() or root not in real.parents:
                continue
            relative = source.relative_to(repo)
            if relative.parts[0] == ".git" or (target / relative).exists():
                continue
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(real, target / relative)
            copied.append(str(relative))
    return copied


def session_home(workdir: Path) -> Path:
    """The agent's HOME for a working directory: beside the worktrees, never inside one (or in `worktrees/`)."""
    home = workdir.resolve().parent.parent / "homes" / workdir.name
    home.mkdir(parents=True, exist_ok=True)
    return home


# ------------------------------------------------------------------------------------------------ read


def worktree_find(project: Project, ref: str) -> Worktree:
    """A worktree by epic (key or id: its conflicted, else newest live, else newest worktree), task key, or id."""
    worktrees = Worktree.objects.filter(project=project).select_related("epic", "task")
    epic = Epic.objects.filter(project=project, key=ref).first()
    if epic is None and ref.isdigit():
        epic = Epic.objects.filter(project=project, pk=int(ref)).first()
    if epic is not None:
        mine = worktrees.filter(epic=epic)
        found = (mine.filter(status=Worktree.Status.CONFLICT).first() or mine.filter(status__in=LIVE_WORKTREE).first()
                 or mine.first())
    else:
        found = worktrees.filter(task__key=ref).first() or (
            worktrees.filter(pk=int(ref)).first() if ref.isdigit() else None)
    if found is None:
        raise NotFoundError(f"no worktree for {ref!r} in project {project.slug!r}", code="worktree_not_found")
    return found


def worktree_git_status(worktree: Worktree) -> dict | None:
    """Branch, HEAD, changes, ahead/behind for a live worktree whose directory exists; None otherwise."""
    if not worktree.is_live or not Path(worktree.path).is_dir():
        return None
    try:
        return gitops.worktree_status(Path(worktree.path), base=worktree.project.default_branch)
    except GitError as exc:
        return {"error": exc.message}


# ------------------------------------------------------------------------------------------------ status


def worktree_status_move(worktree: Worktree, to: str, **changes: object) -> None:
    """Move the worktree's status (WORKTREE_TRANSITIONS), writing `changes` with it in the same update."""
    status_move(worktree, to, WORKTREE_TRANSITIONS, noun="worktree", **changes)


# ------------------------------------------------------------------------------------------------ remove


def worktree_remove(*, worktree: Worktree, force: bool = False, status: str = Worktree.Status.REMOVED) -> Worktree:
    """Remove the worktree's directory and branch; the row stays as history with `status` (merged or removed)."""
    project = worktree.project
    with repo_lock(project):
        gitops.worktree_remove(Path(project.repo_path), worktree.branch, force=force)
    target = worktree.status if worktree.status == Worktree.Status.MERGED else status
    worktree_status_move(worktree, target, removed_at=timezone.now())
    shutil.rmtree(session_home(Path(worktree.path)), ignore_errors=True)
    return worktree


@dataclass
class ProjectReconciliation:
    pruned: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # live records whose worktree was gone: marked removed
    unknown: list[str] = field(default_factory=list)  # worktrees git knows that no record owns: left in place

    def as_dict(self) -> dict:
        return {"pruned": self.pruned, "missing": self.missing, "unknown": self.unknown}


def worktrees_reconcile(*, project: Project) -> ProjectReconciliation:
    """Bring the records and `git worktree list` in line (run at every run start and by `yokeflow worktrees`)."""
    repo = Path(repo_ensure(project).working_dir)
    live = Worktree.objects.filter(project=project, status__in=LIVE_WORKTREE)
    with repo_lock(project):
        found = gitops.reconcile(repo, known_branches=set(live.values_list("branch", flat=True)))
    report = ProjectReconciliation(pruned=found.pruned, unknown=[str(p) for p in found.unknown])
    for worktree in live.filter(branch__in=found.missing_dirs):
        # Its directory is gone (deleted by hand, or a crash mid-create): the record no longer holds ports.
        worktree_status_move(worktree, Worktree.Status.REMOVED, removed_at=timezone.now())
        report.missing.append(worktree.branch)
    return report
