"""The durable merge in-process: each step found out from git and the database, work never lost, nothing stranded.

The crash tests (test_crash_points.py) kill real workers at each step; these set up the states such a kill leaves
and check what finishing them does, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from git import Repo

from apps.agents.models import AgentSession
from apps.core.errors import ConflictError
from apps.core.models import AuditEvent
from apps.orchestration import execution, reaper, runs
from apps.orchestration.merging import merge_message, worktree_cleanup
from apps.orchestration.models import Worktree
from apps.orchestration.worktrees import gitmerge, gitops, worktree_prepare
from apps.projects.models import Task
from apps.projects.services import task_transition

pytestmark = pytest.mark.django_db


def _verified(task: Task, files: dict[str, str], *, commit: bool = False) -> Worktree:
    """The state a worker leaves when it dies right after its session completed: the task merging, the agent's
    files in its worktree (committed or not), a completed session that worked there."""
    worktree = worktree_prepare(task=task, shared_by_epic=False)
    for name, content in files.items():
        (Path(worktree.path) / name).write_text(content)
    if commit:
        gitops.worktree_commit(Path(worktree.path), f"{task.key}: work")
    runs.session_create(project=task.project, task=task, kind="coding", model="claude-sonnet-5-5",
                        provider="anthropic", workdir=worktree.path)
    AgentSession.objects.filter(task=task).update(status="completed", ended_at=timezone.now() - timedelta(hours=1))
    task_transition(task=task, to="merging")
    return worktree


def _main(task: Task) -> Repo:
    return Repo(task.project.repo_path)


def _merges_of(task: Task) -> list:
    return [c for c in _main(task).iter_commits("main", first_parent=True) if c.summary.startswith(f"Merge {task.key}")]


def test_a_manual_merge_commits_work_a_dead_worker_left_uncommitted_and_merges_it(task, api_client, owner):
    worktree = _verified(task, {"hello.txt": "hi\n"})

    response = api_client(owner).post(f"/api/projects/{task.project.slug}/worktrees/{worktree.pk}/merge")

    assert response.status_code == 200, response.content
    assert response.json()["done"] == ["T1"]
    task.refresh_from_db()
    worktree.refresh_from_db()
    assert task.status == "done"
    assert (Path(task.project.repo_path) / "hello.txt").read_text() == "hi\n"
    [merge] = _merges_of(task)
    assert worktree.merge_commit == merge.hexsha and worktree.merge_step == "cleaned"
    assert f"YokeFlow-Branch-Tip: {worktree.merge_tip}" in merge.message
    assert not Path(worktree.path).exists()


def test_a_merge_cut_off_after_main_moved_records_its_own_commit_not_the_newest(task, replay_project):
    worktree = _verified(task, {"hello.txt": "hi\n"}, commit=True)
    repo = Path(task.project.repo_path)
    # The dead worker had moved main to its merge (no record of it), then another merge landed on top.
    tip = gitops.branch_tip(repo, worktree.branch)
    base = gitops.branch_tip(repo, "main")
    mine = gitmerge.merge_candidate(repo, worktree.branch, message=merge_message(worktree, [task], tip))
    gitmerge.advance(repo, into="main", to=mine, expected=mine if base == mine else base)
    other = gitops.worktree_create(repo, "yf/other")
    (other / "other.txt").write_text("x")
    gitops.worktree_commit(other, "other")
    newest = gitmerge.merge(repo, "yf/other", message="Merge other")
    Worktree.objects.filter(pk=worktree.pk).update(merge_task_ids=[task.pk], merge_step="verified")

    runs.jobs_drain(lambda: execution.task_finish(task=task))

    task.refresh_from_db()
    worktree.refresh_from_db()
    assert task.status == "done" and worktree.merge_commit == mine != newest
    assert len(_merges_of(task)) == 1  # not merged a second time
    assert gitops.branch_tip(repo, "main") == newest


def test_the_reaper_finishes_a_stranded_merge_once_its_lease_expired_and_only_then(task, settings):
    worktree = _verified(task, {"hello.txt": "hi\n"})
    Worktree.objects.filter(pk=worktree.pk).update(merge_owner="other-host:1", merge_heartbeat_at=timezone.now())

    assert reaper.stranded_resume() == []  # a live worker holds it

    Worktree.objects.filter(pk=worktree.pk).update(merge_heartbeat_at=timezone.now() - timedelta(minutes=5))
    runs.jobs_drain(reaper.reap)

    task.refresh_from_db()
    assert task.status == "done" and len(_merges_of(task)) == 1
    assert reaper.stranded_resume() == []  # nothing left to finish


def test_a_task_whose_session_ended_before_it_was_settled_is_settled_by_the_reaper(task):
    worktree = worktree_prepare(task=task, shared_by_epic=False)
    (Path(worktree.path) / "hello.txt").write_text("hi\n")
    runs.session_create(project=task.project, task=task, kind="coding", model="claude-sonnet-5-5",
                        provider="anthropic", workdir=worktree.path)
    AgentSession.objects.filter(task=task).update(status="completed", ended_at=timezone.now() - timedelta(hours=1))

    runs.jobs_drain(reaper.reap)

    task.refresh_from_db()
    assert task.status == "done" and task.tests.get().result == "passed"
    assert (Path(task.project.repo_path) / "hello.txt").exists()


def test_retry_resumes_a_merging_task_but_not_while_a_live_worker_merges_it(task, api_client, owner):
    worktree = _verified(task, {"hello.txt": "hi\n"})
    Worktree.objects.filter(pk=worktree.pk).update(merge_owner="other-host:1", merge_heartbeat_at=timezone.now())
    client = api_client(owner)
    url = f"/api/projects/{task.project.slug}/tasks/T1"

    busy = client.post(f"{url}/retry")
    cancel = client.post(f"{url}/cancel")

    assert busy.status_code == 409 and busy.json()["error"] == "merge_in_progress"
    assert cancel.status_code == 409 and cancel.json()["error"] == "merge_in_progress"
    Worktree.objects.filter(pk=worktree.pk).update(merge_heartbeat_at=timezone.now() - timedelta(minutes=5))
    runs.jobs_drain(lambda: runs.task_retry(task=task, by="olivia"))
    task.refresh_from_db()
    assert task.status == "done" and len(_merges_of(task)) == 1
    assert AuditEvent.objects.filter(action="task_retried", actor="olivia").exists()


def test_cancelling_a_merging_task_keeps_its_work_on_its_branch(task, api_client, owner):
    worktree = _verified(task, {"hello.txt": "hi\n"}, commit=True)

    response = api_client(owner).post(f"/api/projects/{task.project.slug}/tasks/T1/cancel")

    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    worktree.refresh_from_db()
    assert worktree.is_live and (Path(worktree.path) / "hello.txt").exists()
    assert "hello.txt" in _main(task).git.show(worktree.branch, "--stat")
    Task.objects.filter(pk=task.pk).update(status="done", completed_at=timezone.now())
    with pytest.raises(ConflictError) as done:
        runs.task_cancel(task=task)
    assert done.value.code == "task_done"


def test_a_worktree_is_kept_while_its_tip_is_not_on_main(task):
    worktree = _verified(task, {"hello.txt": "hi\n"}, commit=True)
    Worktree.objects.filter(pk=worktree.pk).update(status="merged", merge_step="done")
    worktree.refresh_from_db()

    assert worktree_cleanup(worktree=worktree) is False

    worktree.refresh_from_db()
    assert Path(worktree.path, "hello.txt").exists() and "is not on main" in worktree.setup_log
    assert gitops.branch_tip(Path(task.project.repo_path), worktree.branch) is not None


def test_a_main_left_detached_and_dirty_by_a_dead_merge_is_restored_before_the_next(task):
    worktree = _verified(task, {"hello.txt": "hi\n"})
    repo = Path(task.project.repo_path)
    Repo(repo).git.checkout("--detach", "main")
    (repo / "stray-test-output.txt").write_text("left by the tests of a dead merge")

    runs.jobs_drain(lambda: execution.task_finish(task=task))

    task.refresh_from_db()
    assert task.status == "done" and Repo(repo).active_branch.name == "main"
    assert not (repo / "stray-test-output.txt").exists() and not Repo(repo).is_dirty(untracked_files=True)
    assert worktree.pk
