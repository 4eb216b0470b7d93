"""The git worktree layer, against real repositories in tmp_path."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.core.errors import GitError, ValidationError
from apps.orchestration import repository
from apps.orchestration.worktrees import gitmerge
from apps.orchestration.worktrees import gitops as worktrees
from apps.orchestration.worktrees.gitmerge import conflicts, merge, resolve, sync_from
from apps.orchestration.worktrees.gitops import (
    WorktreeConflictError,
    branch_name,
    reconcile,
    worktree_commit,
    worktree_create,
    worktree_list,
    worktree_path,
    worktree_remove,
    worktree_status,
)

HOOKS = ("pre-commit", "prepare-commit-msg", "commit-msg", "post-commit", "pre-merge-commit", "post-merge",
         "post-checkout", "reference-transaction")


def git(cwd: Path, *args: str) -> str:
    """Git as the test runs it: with an identity, and without hooks so that only the module could set one off."""
    done = subprocess.run(["git", "-c", "user.name=Tester", "-c", "user.email=t@example.com", "-c",
                           "core.hooksPath=/dev/null", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout


def write_commit(cwd: Path, name: str, content: str, message: str = "change") -> str:
    (cwd / name).write_text(content)
    git(cwd, "add", name)
    git(cwd, "commit", "-q", "-m", message)
    return git(cwd, "rev-parse", "HEAD").strip()


def ref_is_valid(name: str) -> bool:
    done = subprocess.run(["git", "check-ref-format", "--branch", name], capture_output=True, check=False)
    return done.returncode == 0 and not name.startswith("-")


def snapshot(repo: Path) -> tuple[str, str, str]:
    """HEAD, the index's tree and the working tree's status: what a refused merge must leave as it was."""
    return git(repo, "rev-parse", "HEAD"), git(repo, "write-tree"), git(repo, "status", "--porcelain")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "project" / "repo"
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    write_commit(path, "shared.txt", "one\ntwo\nthree\n", "initial")
    return path


@pytest.fixture
def two_conflicting(repo: Path) -> tuple[Path, Path]:
    """A branch and main that both changed the same line of shared.txt."""
    tree = worktree_create(repo, "yf/left")
    write_commit(tree, "shared.txt", "one\nLEFT\nthree\n")
    write_commit(repo, "shared.txt", "one\nMAIN\nthree\n")
    return repo, tree


# --------------------------------------------------------------------------------------------------
# Branch names and paths
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("parts", "expected"), [
    (("E1", "Storage layer"), "yf/e1-storage-layer"),
    (("CON",), "yf/con_"),
    (("con.txt",), "yf/con_.txt"),
    (("Lpt9", "x"), "yf/lpt9-x"),
    (("COM1",), "yf/com1_"),
    (("a..b",), "yf/a-b"),
    (("x@{y}",), "yf/x-y"),
    (("ends with dot.",), "yf/ends-with-dot"),
    (("name.lock",), "yf/name-lock"),
    (("~^:?*[\\ weird\t\x00 chars",), "yf/weird-chars"),
    (("-lead", ".hidden"), "yf/lead-.hidden"),
    (("a/b//c",), "yf/a-b-c"),
    (("Ünïcödé Straße",), "yf/unicode-strasse"),
    (("日本語 tasks",), "yf/tasks"),
    (("snake__case",), "yf/snake_case"),
])
def test_branch_name_sanitizes_parts_into_one_valid_component(parts, expected):
    assert branch_name(*parts) == expected
    assert ref_is_valid(expected)


def test_branch_name_sanitizes_and_keeps_a_nested_prefix():
    assert branch_name("T3", prefix="YF/Team A") == "yf/team-a/t3"
    assert branch_name("T3", prefix="") == "t3"


def test_branch_name_caps_a_long_name_on_a_word_boundary():
    name = branch_name("word " * 60)  # 300 characters
    assert len(name) <= 200 and name.endswith("word") and ref_is_valid(name)
    assert len(branch_name("x" * 300)) <= 200


@pytest.mark.parametrize("parts", [(), ("",), ("@",), ("...",), ("日本",), ("-- . --",)])
def test_branch_name_without_usable_characters_is_refused(parts):
    with pytest.raises(GitError) as caught:
        branch_name(*parts)
    assert caught.value.code == "invalid_branch"


def sanitized(parts: list[str], prefix: str) -> str | None:
    """The branch name, or None when branch_name refuses the parts as unusable."""
    try:
        return branch_name(*parts, prefix=prefix)
    except GitError as exc:
        if exc.code != "invalid_branch":
            raise
        return None


@settings(max_examples=150, deadline=None)
@given(parts=st.lists(st.text(max_size=80), min_size=1, max_size=4), prefix=st.sampled_from(["yf", "", "A b/c.d"]))
def test_every_sanitized_branch_name_is_valid_for_git(parts, prefix):
    name = sanitized(parts, prefix)
    if name is None:  # refused only when nothing usable was given
        assert not any(c.isascii() and c.isalnum() for c in "".join(parts))
        return
    assert ref_is_valid(name), name
    assert len(name) <= 200 and "__" not in name and not name.endswith(("-", "/", "."))
    assert all(c.split(".")[0] not in worktrees._RESERVED for c in name.split("/"))


def test_worktree_path_maps_slashes_to_double_underscores(repo):
    assert worktree_path(repo, "yf/team/t3") == repo.parent / "worktrees" / "yf__team__t3"
    for bad in ("..", "yf/../x", "", "a//b"):
        with pytest.raises(GitError):
            worktree_path(repo, bad)


# --------------------------------------------------------------------------------------------------
# Creating, reusing, status, commits
# --------------------------------------------------------------------------------------------------


def test_create_makes_a_branch_from_base_and_a_worktree(repo):
    path = worktree_create(repo, "yf/t1")
    assert path == repo.parent / "worktrees" / "yf__t1"
    assert (path / "shared.txt").read_text() == "one\ntwo\nthree\n"
    [info] = worktree_list(repo)
    assert (info.path, info.branch, info.detached, info.locked) == (path.resolve(), "yf/t1", False, False)
    assert info.head == git(repo, "rev-parse", "main").strip()


def test_create_reuses_an_existing_worktree_without_resetting_it(repo):
    path = worktree_create(repo, "yf/t1")
    head = write_commit(path, "work.txt", "done")
    (path / "shared.txt").write_text("uncommitted")
    assert worktree_create(repo, "yf/t1") == path
    assert git(path, "rev-parse", "HEAD").strip() == head
    assert (path / "shared.txt").read_text() == "uncommitted"


def test_create_recovers_from_a_stale_directory(repo):
    stale = worktree_path(repo, "yf/t1")
    stale.mkdir(parents=True)
    (stale / "junk").write_text("left behind")
    path = worktree_create(repo, "yf/t1")
    assert not (path / "junk").exists() and (path / "shared.txt").exists()
    assert [info.branch for info in worktree_list(repo)] == ["yf/t1"]


def test_create_recovers_when_the_worktree_directory_was_deleted(repo):
    path = worktree_create(repo, "yf/t1")
    subprocess.run(["rm", "-rf", str(path)], check=True)
    assert worktree_create(repo, "yf/t1") == path
    assert (path / "shared.txt").exists() and not worktree_list(repo)[0].prunable


def test_create_attaches_to_an_existing_branch_without_resetting_it(repo):
    first = worktree_create(repo, "yf/t1")
    head = write_commit(first, "work.txt", "kept")
    worktree_remove(repo, "yf/t1", delete_branch=False)
    path = worktree_create(repo, "yf/t1")
    assert git(path, "rev-parse", "HEAD").strip() == head
    assert (path / "work.txt").read_text() == "kept"


def test_status_reports_changes_and_distance_from_base(repo):
    path = worktree_create(repo, "yf/t1")
    write_commit(path, "a.txt", "a")
    write_commit(repo, "b.txt", "b")
    (path / "new dir").mkdir()
    (path / "new dir" / "c.txt").write_text("c")
    (path / "shared.txt").write_text("changed")
    status = worktree_status(path)
    assert status["branch"] == "yf/t1" and status["dirty"] is True
    assert sorted(status["changed"]) == ["new dir/c.txt", "shared.txt"]
    assert (status["ahead"], status["behind"]) == (1, 1)
    assert status["head"] == git(path, "rev-parse", "HEAD").strip()


def test_commit_commits_everything_on_the_branch_and_returns_none_when_clean(repo):
    path = worktree_create(repo, "yf/t1")
    (path / "new.txt").write_text("new")
    sha = worktree_commit(path, "Add new")
    assert sha == git(repo, "rev-parse", "yf/t1").strip()
    assert git(repo, "log", "-1", "--format=%s|%an", "yf/t1").strip() == "Add new|YokeFlow agent"
    assert worktree_commit(path, "Nothing") is None


def test_commit_refuses_a_worktree_whose_branch_was_switched(repo):
    path = worktree_create(repo, "yf/t1")
    git(path, "checkout", "-q", "-b", "elsewhere")
    (path / "new.txt").write_text("new")
    with pytest.raises(GitError) as caught:
        worktree_commit(path, "sneaky")
    assert caught.value.code == "wrong_branch"


def test_commit_refuses_config_that_would_run_a_program(repo):
    path = worktree_create(repo, "yf/t1")
    git(path, "config", "filter.evil.clean", f"touch {repo.parent / 'pwned'}")
    (path / ".gitattributes").write_text("*.txt filter=evil\n")
    (path / "x.txt").write_text("x")
    with pytest.raises(GitError) as caught:
        worktree_commit(path, "filtered")
    assert caught.value.code == "unsafe_git_config"
    assert not (repo.parent / "pwned").exists()


def test_a_git_command_that_hangs_raises_git_timeout(repo, monkeypatch):
    def hang(*args, **kwargs):
        raise subprocess.TimeoutExpired(cmd="git", timeout=1)

    monkeypatch.setattr(repository.subprocess, "run", hang)
    with pytest.raises(GitError) as caught:
        worktree_list(repo)
    assert caught.value.code == "git_timeout"


# --------------------------------------------------------------------------------------------------
# Merging back
# --------------------------------------------------------------------------------------------------


def test_two_worktrees_on_different_files_merge_cleanly_with_merge_commits(repo):
    left, right = worktree_create(repo, "yf/left"), worktree_create(repo, "yf/right")
    write_commit(left, "left.txt", "L")
    write_commit(right, "right.txt", "R")
    assert conflicts(repo, "yf/left") == [] and conflicts(repo, "yf/right") == []
    merge(repo, "yf/left", message="Merge left")
    head = merge(repo, "yf/right", message="Merge right")
    assert head == git(repo, "rev-parse", "main").strip()
    assert len(git(repo, "log", "-1", "--format=%P").split()) == 2
    assert git(repo, "log", "-1", "--format=%s").strip() == "Merge right"
    assert (repo / "left.txt").read_text() == "L" and (repo / "right.txt").read_text() == "R"
    assert git(repo, "status", "--porcelain") == ""


def test_squash_merge_makes_one_single_parent_commit_with_the_content(repo):
    path = worktree_create(repo, "yf/t1")
    write_commit(path, "a.txt", "a")
    write_commit(path, "b.txt", "b")
    before = git(repo, "rev-parse", "HEAD").strip()
    head = merge(repo, "yf/t1", strategy="squash", message="T1: a and b")
    assert git(repo, "log", "-1", "--format=%P").split() == [before]
    assert git(repo, "log", "-1", "--format=%s").strip() == "T1: a and b"
    assert (repo / "a.txt").read_text() == "a" and (repo / "b.txt").read_text() == "b"
    assert head == git(repo, "rev-parse", "HEAD").strip() and git(repo, "status", "--porcelain") == ""


def test_conflicts_lists_the_file_both_sides_changed(two_conflicting):
    repo, _ = two_conflicting
    before = snapshot(repo)
    assert conflicts(repo, "yf/left") == ["shared.txt"]
    assert snapshot(repo) == before


def test_merge_with_a_conflict_raises_and_changes_nothing(two_conflicting):
    repo, _ = two_conflicting
    before = snapshot(repo)
    with pytest.raises(WorktreeConflictError) as caught:
        merge(repo, "yf/left", message="Merge left")
    error = caught.value
    assert error.files == ["shared.txt"] and error.details["files"] == ["shared.txt"]
    assert (error.code, error.recoverable) == ("merge_conflict", True)
    assert snapshot(repo) == before and before[2] == ""
    assert not (repo / ".git" / "MERGE_HEAD").exists()


def test_a_merge_that_fails_after_the_check_is_rolled_back(two_conflicting, monkeypatch):
    repo, _ = two_conflicting
    monkeypatch.setattr(gitmerge, "conflicts", lambda *args, **kwargs: [])  # as if main moved after the check
    before = snapshot(repo)
    for strategy in ("merge", "squash"):
        with pytest.raises(WorktreeConflictError) as caught:
            merge(repo, "yf/left", strategy=strategy, message="Merge left")
        assert caught.value.files == ["shared.txt"]
        assert snapshot(repo) == before and not (repo / ".git" / "MERGE_HEAD").exists()


@pytest.mark.parametrize(("side", "expected"), [("theirs", "one\nLEFT\nthree\n"), ("ours", "one\nMAIN\nthree\n")])
def test_resolve_takes_one_side_of_the_conflict(two_conflicting, side, expected):
    repo, tree = two_conflicting
    write_commit(tree, "extra.txt", "from the branch")
    head = resolve(repo, "yf/left", side=side, message=f"Merge left, {side}")
    assert (repo / "shared.txt").read_text() == expected
    assert (repo / "extra.txt").read_text() == "from the branch"  # non-conflicting changes still merge
    assert head == git(repo, "rev-parse", "main").strip()
    assert len(git(repo, "log", "-1", "--format=%P").split()) == 2 and git(repo, "status", "--porcelain") == ""


def test_resolve_manually_is_left_to_a_person(two_conflicting):
    repo, _ = two_conflicting
    with pytest.raises(GitError) as caught:
        resolve(repo, "yf/left", side="manual", message="x")
    assert (caught.value.code, caught.value.recoverable) == ("manual_resolution", True)
    with pytest.raises(ValidationError):
        resolve(repo, "yf/left", side="both", message="x")


def test_merge_refuses_a_dirty_main_or_one_on_another_branch(repo):
    path = worktree_create(repo, "yf/t1")
    write_commit(path, "a.txt", "a")
    (repo / "scratch.txt").write_text("untracked")
    with pytest.raises(GitError) as caught:
        merge(repo, "yf/t1", message="m")
    assert caught.value.code == "main_dirty"
    (repo / "scratch.txt").unlink()
    git(repo, "checkout", "-q", "-b", "other")
    with pytest.raises(GitError) as caught:
        merge(repo, "yf/t1", message="m")
    assert caught.value.code == "wrong_branch"
    with pytest.raises(ValidationError):
        merge(repo, "yf/t1", strategy="rebase", message="m")


def test_sync_brings_main_into_the_worktree(repo):
    path = worktree_create(repo, "yf/t1")
    write_commit(path, "a.txt", "a")
    main_head = write_commit(repo, "b.txt", "b")
    head = sync_from(path)
    assert (path / "b.txt").read_text() == "b" and (path / "a.txt").read_text() == "a"
    assert git(path, "merge-base", "--is-ancestor", main_head, "HEAD") == ""
    assert head == git(repo, "rev-parse", "yf/t1").strip() and worktree_status(path)["behind"] == 0


def test_sync_with_a_conflict_raises_and_leaves_the_worktree_alone(two_conflicting):
    _, tree = two_conflicting
    before = snapshot(tree)
    with pytest.raises(WorktreeConflictError) as caught:
        sync_from(tree)
    assert caught.value.files == ["shared.txt"] and snapshot(tree) == before


def test_hooks_planted_in_the_repository_never_run(repo):
    marker = repo.parent / "hook-ran"
    for hook in HOOKS:
        script = repo / ".git" / "hooks" / hook
        script.write_text(f"#!/bin/sh\necho {hook} >> {marker}\n")
        script.chmod(0o755)
    path = worktree_create(repo, "yf/t1")
    (path / "a.txt").write_text("a")
    worktree_commit(path, "a")
    merge(repo, "yf/t1", message="Merge")
    write_commit(path, "b.txt", "b")
    merge(repo, "yf/t1", strategy="squash", message="Squash")
    write_commit(repo, "c.txt", "c")
    sync_from(path)
    assert not marker.exists()
    subprocess.run(["git", "-c", "user.name=T", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x"],
                   cwd=repo, check=True)
    assert marker.exists()  # plain git does run them: the hooks were live


# --------------------------------------------------------------------------------------------------
# Removing and reconciling
# --------------------------------------------------------------------------------------------------


def test_remove_deletes_worktree_and_branch_and_is_idempotent(repo):
    path = worktree_create(repo, "yf/t1")
    worktree_remove(repo, "yf/t1")
    worktree_remove(repo, "yf/t1")
    worktree_remove(repo, "yf/never-existed")
    assert not path.exists() and worktree_list(repo) == []
    assert git(repo, "branch", "--list", "yf/t1") == ""


def test_remove_keeps_a_dirty_worktree_unless_forced(repo):
    path = worktree_create(repo, "yf/t1")
    (path / "unsaved.txt").write_text("work")
    with pytest.raises(GitError) as caught:
        worktree_remove(repo, "yf/t1")
    assert caught.value.code == "worktree_dirty" and path.exists()
    worktree_remove(repo, "yf/t1", force=True)
    assert not path.exists()


def test_reconcile_prunes_strays_and_reports_unknown_and_missing(repo):
    known = worktree_create(repo, "yf/known")
    unknown = worktree_create(repo, "yf/unknown")
    gone = worktree_create(repo, "yf/gone")
    subprocess.run(["rm", "-rf", str(gone)], check=True)
    stray = repo.parent / "worktrees" / "stray"
    stray.mkdir()
    (stray / "file").write_text("x")
    result = reconcile(repo, known_branches={"yf/known", "yf/gone", "yf/never-made"})
    assert sorted(result.pruned) == ["stray", "yf__gone"]
    assert result.unknown == [unknown.resolve()] and unknown.exists()
    assert result.missing_dirs == ["yf/gone", "yf/never-made"]
    assert not stray.exists() and known.exists()
    assert sorted(info.branch for info in worktree_list(repo)) == ["yf/known", "yf/unknown"]
