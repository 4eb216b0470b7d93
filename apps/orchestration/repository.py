"""The project's git repository on disk: created on first use, committed to after each verified task."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import git
from git import Actor, Repo

from apps.agents.sandbox import scrubbed_env
from apps.core.errors import ConflictError, GitError, ValidationError
from apps.projects.models import Project

AGENT = Actor("YokeFlow agent", "agent@yokeflow.local")
GITIGNORE = "__pycache__/\n*.pyc\n.env\n.env.*\n"
GIT_TIMEOUT = 120  # seconds for one git command


def repo_ensure(project: Project) -> Repo:
    """Open the project's repository, creating it (with an initial commit on the default branch) if needed."""
    path = Path(project.repo_path)
    try:
        if not path.exists() or not any(path.iterdir()):
            path.mkdir(parents=True, exist_ok=True)
            repo = Repo.init(path, initial_branch=project.default_branch)
        else:
            repo = Repo(path)
        if not repo.head.is_valid():
            (path / ".gitignore").write_text(GITIGNORE, encoding="utf-8")
            repo.index.add([".gitignore"])
            repo.index.commit("Initial commit", author=AGENT, committer=AGENT)
        return repo
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise ValidationError(f"repo_path: {path} exists and is not a git repository", code="not_a_repository",
                              details={"fields": {"repo_path": ["not a git repository"]}}) from None
    except (git.GitCommandError, OSError) as exc:
        raise ConflictError(f"could not prepare the repository at {path}: {exc}", code="repository_error",
                            recoverable=False) from None


# The agent ran arbitrary commands in this working copy, so it may have written its local git config. Git run
# by YokeFlow must not execute anything the agent chose, nor see YokeFlow's secrets: hooks and fsmonitor are
# switched off, config keys that name a program are refused, and the environment is the sandbox's.
SAFE_GIT = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "commit.gpgSign=false")
UNSAFE_CONFIG = re.compile(
    r"^(core\.(fsmonitor|hookspath|sshcommand|pager|editor|askpass|gitproxy|attributesfile)|filter\.|diff\..*\."
    r"(textconv|command)|merge\..*\.driver|gpg\.|alias\.|include\.|includeif\.|credential\.|sequence\.editor|"
    r"uploadpack\.|receivepack\.)",
    re.IGNORECASE,
)


def _git_env() -> dict[str, str]:
    # HOME points nowhere: git would read ~/.config/git/attributes from it, and the agent may write its home.
    env = scrubbed_env(home=os.devnull)
    return env | {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_AUTHOR_NAME": AGENT.name,
                  "GIT_AUTHOR_EMAIL": AGENT.email, "GIT_COMMITTER_NAME": AGENT.name,
                  "GIT_COMMITTER_EMAIL": AGENT.email}


def git_run(cwd: Path | str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run git safely (hooks and fsmonitor off, no secrets, a timeout) and keep the exit code."""
    try:
        return subprocess.run(["git", *SAFE_GIT, *args], cwd=cwd, env=_git_env(), capture_output=True,
                              encoding="utf-8", errors="surrogateescape", timeout=GIT_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} took longer than {GIT_TIMEOUT} s", code="git_timeout") from None
    except OSError as exc:
        raise GitError(f"cannot run git {args[0]} in {cwd}: {exc}", code="git_failed") from None


def git_failure(args: tuple[str, ...], done: subprocess.CompletedProcess[str]) -> GitError:
    return GitError(f"git {args[0]} failed: {(done.stderr or done.stdout).strip()[:500]}", code="git_failed")


def git_out(cwd: Path | str, *args: str) -> str:
    """`git_run` that raises `GitError` on a non-zero exit and returns the output."""
    done = git_run(cwd, *args)
    if done.returncode != 0:
        raise git_failure(args, done)
    return done.stdout


def check_config(cwd: Path | str) -> None:
    """Refuse to work in a repository whose config names a program (a filter, merge driver, …).

    Worktrees share the main repository's config, and an agent working in one may have written it; add, status,
    checkout and merge would run such a program. The command-line scope is ours (SAFE_GIT), so it is skipped.
    """
    fields = git_out(cwd, "config", "--list", "--name-only", "--show-scope", "-z").split("\0")
    keys = {key for scope, key in zip(fields[0::2], fields[1::2], strict=False) if scope != "command"}
    unsafe = sorted(key for key in keys if UNSAFE_CONFIG.match(key))
    if unsafe:
        raise GitError(f"refusing to run git: the repository's config sets {', '.join(unsafe)}, which would run a "
                       "program", code="unsafe_git_config")


def current_branch(cwd: Path | str) -> str | None:
    done = git_run(cwd, "symbolic-ref", "--quiet", "--short", "HEAD")
    return done.stdout.strip() if done.returncode == 0 else None


def repo_commits(repo: Repo, limit: int = 50) -> list[git.Commit]:
    return list(repo.iter_commits(max_count=limit))
