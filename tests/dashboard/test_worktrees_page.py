"""The worktrees page: live worktrees with their git status and conflicts, and a person's merge, resolution and
clean-up. Real git repositories; worktrees made by the orchestration services."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from apps.orchestration import worktree_actions
from apps.orchestration.models import Worktree
from apps.orchestration.repository import repo_ensure
from apps.orchestration.worktrees import gitops, worktree_prepare
from apps.projects.models import Project, Task
from apps.projects.services import project_create

pytestmark = pytest.mark.django_db


def git(cwd: Path | str, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def branches(project: Project) -> list[str]:
    return git(project.repo_path, "branch", "--list", "yf/*", "--format=%(refname:short)").split()


def prepared(project: Project, key: str) -> Worktree:
    return worktree_prepare(task=Task.objects.select_related("project", "epic").get(project=project, key=key),
                            shared_by_epic=False)


def committed(tree: Worktree, name: str, text: str) -> Worktree:
    (Path(tree.path) / name).write_text(text)
    gitops.worktree_commit(Path(tree.path), f"{tree.branch}: {name}")
    return tree


def page_url(project: Project) -> str:
    return f"/projects/{project.slug}/worktrees/"


def action_url(project: Project, tree: Worktree, action: str) -> str:
    return f"/projects/{project.slug}/worktrees/{tree.pk}/{action}"


def card(page: str, tree: Worktree) -> str:
    return page.split(f'id="worktree-{tree.pk}"')[1].split("</article>")[0]


@pytest.fixture
def repo_project(planned_project) -> Project:
    repo_ensure(planned_project)
    planned_project.refresh_from_db()
    return planned_project


@pytest.fixture
def conflicted(repo_project) -> SimpleNamespace:
    """T1 and T9 both write shared.txt in worktrees made before either merged: T1 merges, T9 then conflicts."""
    first = committed(prepared(repo_project, "T1"), "shared.txt", "first\n")
    second = committed(prepared(repo_project, "T9"), "shared.txt", "second\n")
    assert worktree_actions.worktree_merge_request(worktree=first).ok
    assert worktree_actions.worktree_merge_request(worktree=second).conflict_files == ["shared.txt"]
    second.refresh_from_db()
    return SimpleNamespace(project=repo_project, merged=first, worktree=second)


# --- the page --------------------------------------------------------------------------------------------------

def test_a_live_worktree_shows_its_facts_and_git_status(client, repo_project, owner):
    tree = prepared(repo_project, "T1")
    (Path(tree.path) / "notes.txt").write_text("todo\n")
    client.force_login(owner)

    response = client.get(page_url(repo_project))

    assert response.status_code == 200
    page = response.text
    assert "<h1>Todo service: worktrees</h1>" in page and 'aria-current="page">Worktrees' in page
    assert "css/worktrees.css" in page
    shown = card(page, tree)
    assert f"<code>{tree.branch}</code>" in shown and "status-active" in shown and tree.path in shown
    assert "<code>E1</code>" in shown and "<code>T1</code>" in shown
    assert f"<code>{tree.base_commit[:12]}</code>" in shown
    assert f"{tree.port_base}–{tree.port_base + tree.port_count - 1}" in shown
    assert "0 commits ahead, 0 behind" in shown and "1 changed file" in shown and "<code>notes.txt</code>" in shown
    assert 'id="side-' not in shown  # nothing to resolve
    assert "Merge into main" in shown and f'<label for="force-{tree.pk}">' in shown
    assert "No worktree has been merged or removed yet" in page


def test_a_conflicted_worktree_lists_its_files_and_offers_a_resolution(client, conflicted, owner):
    client.force_login(owner)

    page = client.get(page_url(conflicted.project)).text

    shown = card(page, conflicted.worktree)
    assert "status-conflict" in shown and "worktree-conflict" in page
    assert 'class="conflict"' in shown and "conflicts in 1 file" in shown and "<code>shared.txt</code>" in shown
    assert "1 commit ahead, 2 behind" in shown  # main has T1's commit and its merge commit
    assert f'<label for="side-{conflicted.worktree.pk}">' in shown and 'value="theirs"' in shown
    history = page.split("Merged and removed")[1]
    assert conflicted.merged.branch in history and "status-merged" in history


def test_a_project_without_worktrees_says_so(client, project, owner):
    client.force_login(owner)

    page = client.get(page_url(project)).text

    assert "No live worktree" in page and "No worktree has been merged or removed yet" in page


def test_a_viewer_sees_no_actions(client, repo_project, viewer):
    tree = prepared(repo_project, "T1")
    client.force_login(viewer)

    page = client.get(page_url(repo_project)).text

    assert tree.branch in page and "Read only" in page
    assert "Remove worktree" not in page and "<form method=\"post\" action=\"/projects/" not in page


# --- actions ---------------------------------------------------------------------------------------------------

def test_merging_from_the_page_merges_and_says_so(client, repo_project, owner):
    tree = committed(prepared(repo_project, "T1"), "hello.txt", "hi\n")
    client.force_login(owner)

    response = client.post(action_url(repo_project, tree, "merge"))

    assert response.status_code == 302 and response["Location"] == page_url(repo_project)
    tree.refresh_from_db()
    assert tree.status == "merged" and tree.merge_commit == git(repo_project.repo_path, "rev-parse", "main").strip()
    assert git(repo_project.repo_path, "show", "main:hello.txt") == "hi\n"
    page = client.get(response["Location"]).text
    assert f"Merged {tree.branch} into main as {tree.merge_commit[:12]}" in page
    assert "No live worktree" in page and "status-merged" in page.split("Merged and removed")[1]


def test_a_merge_that_conflicts_is_reported_as_a_warning(client, repo_project, owner):
    first = committed(prepared(repo_project, "T1"), "shared.txt", "first\n")
    second = committed(prepared(repo_project, "T9"), "shared.txt", "second\n")
    client.force_login(owner)
    assert client.post(action_url(repo_project, first, "merge")).status_code == 302

    response = client.post(action_url(repo_project, second, "merge"), follow=True)

    assert response.status_code == 200
    assert 'class="message warning"' in response.text and "conflicts with main in shared.txt" in response.text
    second.refresh_from_db()
    assert (second.status, second.conflict_files) == ("conflict", ["shared.txt"])


def test_resolving_theirs_merges_the_worktrees_side(client, conflicted, owner):
    client.force_login(owner)

    response = client.post(action_url(conflicted.project, conflicted.worktree, "resolve"), {"side": "theirs"},
                           follow=True)

    assert response.status_code == 200 and "Merged " + conflicted.worktree.branch in response.text
    conflicted.worktree.refresh_from_db()
    assert conflicted.worktree.status == "merged"
    assert git(conflicted.project.repo_path, "show", "main:shared.txt") == "second\n"


@pytest.mark.parametrize(("side", "status", "text"), [
    ("manual", 409, "resolve by hand: in "), ("sideways", 422, "side: choose ours, theirs, manual"),
    ("", 422, "side: choose ours, theirs, manual")])
def test_a_refused_resolution_re_renders_with_the_reason(client, conflicted, owner, side, status, text):
    client.force_login(owner)

    response = client.post(action_url(conflicted.project, conflicted.worktree, "resolve"), {"side": side})

    assert response.status_code == status
    assert 'class="error" role="alert"' in response.text and text in response.text
    assert "<code>shared.txt</code>" in response.text  # the page itself, not an error page
    conflicted.worktree.refresh_from_db()
    assert conflicted.worktree.status == "conflict"


def test_cleanup_removes_the_worktree_and_its_branch(client, repo_project, owner):
    tree = prepared(repo_project, "T1")
    client.force_login(owner)

    response = client.post(action_url(repo_project, tree, "cleanup"), follow=True)

    assert response.status_code == 200 and f"Removed worktree {tree.branch}" in response.text
    tree.refresh_from_db()
    assert tree.status == "removed" and not Path(tree.path).exists() and branches(repo_project) == []
    assert "status-removed" in response.text.split("Merged and removed")[1]


def test_a_dirty_worktree_is_removed_only_with_force(client, repo_project, owner):
    tree = prepared(repo_project, "T1")
    (Path(tree.path) / "unsaved.txt").write_text("work in progress\n")
    client.force_login(owner)

    refused = client.post(action_url(repo_project, tree, "cleanup"))

    assert refused.status_code == 409 and "uncommitted changes" in refused.text and tree.branch in refused.text
    assert Path(tree.path, "unsaved.txt").exists() and Worktree.objects.get(pk=tree.pk).status == "active"

    forced = client.post(action_url(repo_project, tree, "cleanup"), {"force": "on"}, follow=True)

    assert "uncommitted changes discarded" in forced.text
    assert not Path(tree.path).exists() and Worktree.objects.get(pk=tree.pk).status == "removed"


def test_acting_on_a_merged_worktree_is_a_conflict(client, conflicted, owner):
    client.force_login(owner)

    response = client.post(action_url(conflicted.project, conflicted.merged, "cleanup"))

    assert response.status_code == 409 and "is merged" in response.text


def test_an_unknown_action_or_another_projects_worktree_is_404(client, repo_project, owner):
    tree = prepared(repo_project, "T1")
    other = project_create(owner=owner, name="Other", slug="other")
    client.force_login(owner)

    assert client.post(action_url(repo_project, tree, "explode")).status_code == 404
    assert client.post(f"/projects/other/worktrees/{tree.pk}/cleanup").status_code == 404
    assert client.post(f"/projects/{repo_project.slug}/worktrees/999999/merge").status_code == 404
    assert client.get(action_url(repo_project, tree, "merge")).status_code == 405
    assert other.pk and Worktree.objects.get(pk=tree.pk).status == "active" and Path(tree.path).is_dir()


def test_a_viewers_post_is_refused_without_change(client, repo_project, viewer):
    tree = committed(prepared(repo_project, "T1"), "hello.txt", "hi\n")
    client.force_login(viewer)

    for action in ("merge", "cleanup"):
        response = client.post(action_url(repo_project, tree, action), {"force": "on"})
        assert response.status_code == 403 and "you may not run or change its work" in response.text
    tree.refresh_from_db()
    assert tree.status == "active" and Path(tree.path).is_dir() and branches(repo_project) == [tree.branch]


def test_outsiders_get_404_and_anonymous_users_the_login(client, repo_project, outsider):
    tree = prepared(repo_project, "T1")

    for response in (client.get(page_url(repo_project)), client.post(action_url(repo_project, tree, "cleanup"))):
        assert response.status_code == 302 and response["Location"].startswith("/login/?next=")
    client.force_login(outsider)
    assert client.get(page_url(repo_project)).status_code == 404
    assert client.post(action_url(repo_project, tree, "cleanup")).status_code == 404
    assert Worktree.objects.get(pk=tree.pk).status == "active"
