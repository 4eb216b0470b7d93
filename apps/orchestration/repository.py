"""The project's git repository on disk: created on first use, committed to after each verified task."""

from __future__ import annotations

from pathlib import Path

import git
from git import Actor, Repo

from apps.core.errors import GitError
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
        raise GitError(f"{path} exists and is not a git repository", code="not_a_repository") from None
    except (git.GitCommandError, OSError) as exc:
        raise GitError(f"could not prepare the repository at {path}: {exc}", code="repository_error") from None


# The agent ran arbitrary commands in this working copy: never let it choose code that git runs for us.
SAFE_GIT = ("-c", "core.hooksPath=/dev/null")
COMMITTER_ENV = {"GIT_AUTHOR_NAME": AGENT.name, "GIT_AUTHOR_EMAIL": AGENT.email,
                 "GIT_COMMITTER_NAME": AGENT.name, "GIT_COMMITTER_EMAIL": AGENT.email}


def repo_commit_all(repo: Repo, message: str) -> str | None:
    """Stage everything (the .gitignore keeps caches out) and commit; None when there was nothing to commit."""
    try:
        with repo.git.custom_environment(**COMMITTER_ENV):
            repo.git.execute(["git", *SAFE_GIT, "add", "-A"], kill_after_timeout=GIT_TIMEOUT)
            if not repo.git.execute(["git", "diff", "--cached", "--name-only"], kill_after_timeout=GIT_TIMEOUT):
                return None
            repo.git.execute(["git", *SAFE_GIT, "commit", "--no-verify", "-q", "-m", message],
                             kill_after_timeout=GIT_TIMEOUT)
        return repo.head.commit.hexsha
    except git.GitCommandError as exc:
        raise GitError(f"commit failed: {exc}", code="commit_failed") from None


def repo_commits(repo: Repo, limit: int = 50) -> list[git.Commit]:
    return list(repo.iter_commits(max_count=limit))
