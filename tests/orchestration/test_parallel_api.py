"""The runs API: starting, watching and cancelling a parallel run, the worktrees agents work in (inspect, merge,
resolve a conflict, delete), and killing a session. Real git repositories, the fake Claude through the real SDK,
jobs run in this process."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.test import Client
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.tasks import async_task

from apps.agents.models import AgentSession
from apps.agents.services import session_create
from apps.orchestration import execution
from apps.orchestration.models import ParallelBatch, Worktree
from apps.orchestration.repository import repo_ensure
from apps.orchestration.worktrees import branch_for, gitops, path_for, worktree_prepare
from apps.projects.models import AcceptanceTest, Project, Task
from apps.projects.services import project_create

pytestmark = pytest.mark.django_db


# ------------------------------------------------------------------------------------------------ helpers


def _post(client: Client, url: str, body: dict | None = None):
    return client.post(url, data=json.dumps(body or {}), content_type="application/json")


def _refused(response, status: int, code: str) -> dict:
    """An error answer: the status, JSON with a stable `error` code and a message a person can act on."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == code, body
    assert isinstance(body["message"], str) and len(body["message"]) > 10
    return body


def _invalid_fields(response) -> list[str]:
    assert response.status_code == 422, response.content
    return [err["loc"][-1] for err in response.json()["detail"]]


def git(cwd: Path | str, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.name=Tester", "-c", "user.email=t@example.com", "-c",
                           "core.hooksPath=/dev/null", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout


def _branches(project: Project) -> list[str]:
    return git(project.repo_path, "branch", "--list", "yf/*", "--format=%(refname:short)").split()


def _main_file(project: Project, name: str) -> str | None:
    done = subprocess.run(["git", "show", f"{project.default_branch}:{name}"], cwd=project.repo_path,
                          capture_output=True, text=True, check=False)
    return done.stdout if done.returncode == 0 else None


def _task(project: Project, key: str) -> Task:
    return Task.objects.select_related("project", "epic").get(project=project, key=key)


def _acceptance(task: Task, command: str) -> None:
    task.tests.all().delete()
    AcceptanceTest.objects.create(task=task, description=f"`{command}` passes", command=command)


def _session_for(task: Task) -> AgentSession:
    """A session as the scheduler makes one for a claimed task: its workdir is the task's own worktree."""
    workdir = path_for(task.project, branch_for(task, shared_by_epic=False))
    return session_create(project=task.project, task=task, kind="coding", model="claude-sonnet-5-5",
                          provider="anthropic", workdir=str(workdir))


def _script_write(claude, name: str, content: str) -> None:
    claude.tool_use("write_file", {"path": name, "content": content})
    claude.tool_use("update_task_status", {"status": "done", "evidence": f"{name} written"})
    claude.text("Done.")


@pytest.fixture
def repo_project(planned_project) -> Project:
    repo_ensure(planned_project)
    planned_project.refresh_from_db()
    return planned_project


@pytest.fixture
def owner_client(owner, api_client) -> Client:
    return api_client(owner)


@pytest.fixture
def conflicted(claude, repo_project):
    """T1 (epic E1) and T9 (epic E3) both write shared.txt, each in a worktree made before either merged: T1's
    work is merged, T9's merge would conflict."""
    project = repo_project
    project.tasks.exclude(key__in=("T1", "T9")).update(status=Task.Status.CANCELLED)
    project.tasks.filter(key__in=("T1", "T9")).update(status=Task.Status.RUNNING)
    first, second = _task(project, "T1"), _task(project, "T9")
    _acceptance(first, "grep -qx first shared.txt")
    _acceptance(second, "grep -qx second shared.txt")
    trees = [worktree_prepare(task=task, shared_by_epic=False) for task in (first, second)]

    for task, word in ((first, "first"), (second, "second")):
        _script_write(claude, "shared.txt", f"{word}\n")
        execution.task_session_execute(session=_session_for(task))

    first.refresh_from_db()
    assert first.status == Task.Status.DONE, first.last_error
    return SimpleNamespace(project=project, first=first, second=second, worktree=trees[1],
                           main_head=git(project.repo_path, "rev-parse", "HEAD").strip())


# ------------------------------------------------------------------------------------------------ starting a run


def test_starting_a_parallel_run_saves_its_settings_and_claims_the_ready_tasks(repo_project, owner_client):
    url = f"/api/projects/{repo_project.slug}/parallel/start"

    response = _post(owner_client, url, {"max_concurrency": 5, "strategy": "ready", "parallel": True})

    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["project_id"], body["status"]) == (repo_project.pk, "running")
    assert (body["parallel_enabled"], body["strategy"], body["max_concurrency"]) == (True, "ready", 5)
    assert body["tasks"] == {"running": 2, "pending": 7}  # T1 and T9 (soft dependency only) were ready
    assert (body["batches_total"], body["batches_completed"], body["current_batch"]) == (7, 0, 1)
    repo_project.refresh_from_db()
    assert (repo_project.status, repo_project.max_concurrency, repo_project.strategy) == ("running", 5, "ready")
    sessions = AgentSession.objects.filter(project=repo_project)
    assert sorted(sessions.values_list("task__key", "status")) == [("T1", "queued"), ("T9", "queued")]


def test_the_batch_strategy_without_parallelism_claims_only_the_first_batch(repo_project, operator, api_client):
    response = _post(api_client(operator), f"/api/projects/{repo_project.slug}/parallel/start",
                     {"max_concurrency": 2, "strategy": "batch", "parallel": False})

    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["parallel_enabled"], body["strategy"], body["max_concurrency"]) == (False, "batch", 2)
    assert list(repo_project.tasks.filter(status="running").values_list("key", flat=True)) == ["T1"]
    session = AgentSession.objects.get(project=repo_project)
    assert session.workdir == str(path_for(repo_project, branch_for(_task(repo_project, "T1"), shared_by_epic=True)))


@pytest.mark.parametrize(("body", "field"), [
    ({"max_concurrency": 0}, "max_concurrency"),
    ({"max_concurrency": 65}, "max_concurrency"),
    ({"strategy": "fastest"}, "strategy"),
])
def test_starting_with_an_invalid_setting_answers_422_with_the_field(repo_project, owner_client, body, field):
    response = _post(owner_client, f"/api/projects/{repo_project.slug}/parallel/start", body)

    assert field in _invalid_fields(response)
    assert all(err["msg"] for err in response.json()["detail"])
    repo_project.refresh_from_db()
    assert (repo_project.status, repo_project.max_concurrency, repo_project.strategy) == ("planned", 3, "ready")
    assert not AgentSession.objects.exists()


def test_a_project_without_a_plan_cannot_start(project, owner_client):
    body = _refused(_post(owner_client, f"/api/projects/{project.slug}/parallel/start"), 409, "no_plan")

    assert body["category"] == "conflict" and "plan" in body["message"]
    project.refresh_from_db()
    assert project.status == "draft"


def test_a_running_project_cannot_start_again(repo_project, owner_client):
    url = f"/api/projects/{repo_project.slug}/parallel/start"
    assert _post(owner_client, url, {"max_concurrency": 4}).status_code == 202

    _refused(_post(owner_client, url, {"max_concurrency": 9}), 409, "already_running")

    repo_project.refresh_from_db()
    assert repo_project.max_concurrency == 4
    assert AgentSession.objects.filter(project=repo_project).count() == 2


def test_a_viewer_cannot_start_a_run_and_an_outsider_does_not_see_the_project(repo_project, viewer, outsider,
                                                                             api_client):
    url = f"/api/projects/{repo_project.slug}/parallel/start"

    _refused(_post(api_client(viewer), url, {"max_concurrency": 2}), 403, "permission_denied")
    _refused(_post(api_client(outsider), url, {"max_concurrency": 2}), 404, "project_not_found")

    repo_project.refresh_from_db()
    assert (repo_project.status, repo_project.max_concurrency) == ("planned", 3)
    assert not AgentSession.objects.exists()


def test_a_full_job_queue_refuses_a_new_run_and_says_what_to_do(repo_project, owner_client, settings):
    settings.RUN_QUEUE_LIMIT = 0
    async_task("math.floor", 1)
    assert get_broker().queue_size() == 1

    body = _refused(_post(owner_client, f"/api/projects/{repo_project.slug}/parallel/start"), 409, "queue_full")

    assert body["recoverable"] is True
    assert "1 jobs" in body["message"] and "start more workers" in body["message"]
    repo_project.refresh_from_db()
    assert repo_project.status == "planned"
    assert not AgentSession.objects.exists() and not ParallelBatch.objects.exists()
    assert not repo_project.tasks.filter(status="running").exists()


def test_a_start_refused_for_a_full_queue_leaves_the_settings_alone(repo_project, owner_client, settings):
    settings.RUN_QUEUE_LIMIT = 0
    async_task("math.floor", 1)

    response = _post(owner_client, f"/api/projects/{repo_project.slug}/parallel/start",
                     {"max_concurrency": 7, "strategy": "batch", "parallel": False})

    _refused(response, 409, "queue_full")
    repo_project.refresh_from_db()
    assert (repo_project.max_concurrency, repo_project.strategy, repo_project.parallel_enabled) == (3, "ready", True)


# ------------------------------------------------------------------------------------------------ watching a run


def test_the_status_counts_tasks_lists_running_sessions_and_batches(repo_project, owner_client, viewer, api_client):
    _post(owner_client, f"/api/projects/{repo_project.slug}/parallel/start", {"max_concurrency": 3})
    session = AgentSession.objects.get(project=repo_project, task__key="T1")
    beat = timezone.now()
    AgentSession.objects.filter(pk=session.pk).update(status="running", started_at=beat, heartbeat_at=beat, turns=2)

    response = api_client(viewer).get(f"/api/projects/{repo_project.slug}/parallel/status")  # viewers may watch

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "running" and body["tasks"] == {"running": 2, "pending": 7}
    assert [(r["session_id"], r["task_key"], r["turns"]) for r in body["running"]] == [(session.pk, "T1", 2)]
    assert (body["current_batch"], body["batches_total"], body["batches_completed"]) == (1, 7, 0)
    assert body["live_worktrees"] == 0 and body["queued_jobs"] == get_broker().queue_size()


def test_the_batches_follow_the_kahn_order_of_the_plan(repo_project, owner_client):
    base = f"/api/projects/{repo_project.slug}/parallel/batches"
    assert owner_client.get(base).json() == []  # planned when a run starts
    _post(owner_client, f"/api/projects/{repo_project.slug}/parallel/start", {"max_concurrency": 3})

    batches = owner_client.get(base).json()

    assert [b["number"] for b in batches] == list(range(1, 8))
    assert [b["task_keys"] for b in batches] == [["T1"], ["T2"], ["T3"], ["T4"], ["T5", "T6", "T9"], ["T7"], ["T8"]]
    assert (batches[0]["total"], batches[0]["running"], batches[0]["done"]) == (1, 1, 0)
    # T9 has only soft dependencies, so the ready strategy starts it now: its batch (5) is running too.
    assert [b["status"] for b in batches] == ["running", "pending", "pending", "pending", "running", "pending",
                                              "pending"]
    ids = dict(repo_project.tasks.values_list("key", "pk"))
    assert batches[4]["task_ids"] == [ids["T5"], ids["T6"], ids["T9"]]

    fifth = owner_client.get(f"{base}/5")
    assert fifth.status_code == 200
    assert (fifth.json()["task_keys"], fifth.json()["total"], fifth.json()["running"]) == (["T5", "T6", "T9"], 3, 1)
    _refused(owner_client.get(f"{base}/99"), 404, "batch_not_found")


def test_the_batch_of_a_claimed_task_is_running(repo_project, owner_client):
    _post(owner_client, f"/api/projects/{repo_project.slug}/parallel/start", {"max_concurrency": 3})

    first = owner_client.get(f"/api/projects/{repo_project.slug}/parallel/batches/1").json()

    assert first["running"] == 1
    assert first["status"] == "running" and first["started_at"] is not None


def test_cancelling_a_run_cancels_its_queued_sessions_and_pauses_the_project(repo_project, owner_client, viewer,
                                                                             api_client):
    _post(owner_client, f"/api/projects/{repo_project.slug}/parallel/start", {"max_concurrency": 3})
    url = f"/api/projects/{repo_project.slug}/parallel/cancel"

    _refused(_post(api_client(viewer), url), 403, "permission_denied")
    assert AgentSession.objects.filter(project=repo_project, status="queued").count() == 2

    response = _post(owner_client, url)

    assert response.status_code == 200
    assert response.json() == {"project_id": repo_project.pk, "status": "paused", "sessions": {"cancelled": 2}}
    repo_project.refresh_from_db()
    assert repo_project.status == "paused"
    assert set(AgentSession.objects.filter(project=repo_project).values_list("status", flat=True)) == {"cancelled"}
    assert sorted(repo_project.tasks.filter(status="cancelled").values_list("key", flat=True)) == ["T1", "T9"]
    again = _post(owner_client, f"/api/projects/{repo_project.slug}/parallel/start", {"max_concurrency": 3})
    assert again.status_code == 202 and again.json()["tasks"]["running"] == 2  # the cancelled run goes on


# ------------------------------------------------------------------------------------------------ worktrees


def test_worktrees_are_listed_and_filtered_to_the_live_ones(repo_project, owner_client):
    kept = worktree_prepare(task=_task(repo_project, "T1"), shared_by_epic=False)
    worktree_prepare(task=_task(repo_project, "T9"), shared_by_epic=False)
    base = f"/api/projects/{repo_project.slug}/worktrees"
    assert owner_client.delete(f"{base}/E3").status_code == 200

    everything = owner_client.get(base).json()
    live = owner_client.get(f"{base}?live=true").json()

    assert sorted((w["epic_key"], w["task_key"], w["status"]) for w in everything) == [
        ("E1", "T1", "active"), ("E3", "T9", "removed")]
    assert [(w["id"], w["branch"], w["path"]) for w in live] == [(kept.pk, kept.branch, kept.path)]
    assert live[0]["port_base"] is not None and live[0]["git"] is None  # the list does not run git


def test_a_live_worktree_shows_its_git_status(repo_project, owner_client):
    tree = worktree_prepare(task=_task(repo_project, "T1"), shared_by_epic=False)
    url = f"/api/projects/{repo_project.slug}/worktrees/E1"
    clean = owner_client.get(url).json()
    assert clean["git"]["branch"] == tree.branch
    assert (clean["git"]["ahead"], clean["git"]["behind"], clean["git"]["dirty"]) == (0, 0, False)

    (Path(tree.path) / "notes.txt").write_text("todo\n")
    assert owner_client.get(url).json()["git"]["changed"] == ["notes.txt"]
    git(tree.path, "add", "notes.txt")
    git(tree.path, "commit", "-q", "-m", "notes")
    (Path(repo_project.repo_path) / "main.txt").write_text("main\n")
    git(repo_project.repo_path, "add", "main.txt")
    git(repo_project.repo_path, "commit", "-q", "-m", "main moves on")
    (Path(tree.path) / "scratch.txt").write_text("wip\n")

    status = owner_client.get(url).json()

    assert status["id"] == tree.pk and status["status"] == "active" and status["task_key"] == "T1"
    assert status["git"]["head"] == git(tree.path, "rev-parse", "HEAD").strip()
    assert (status["git"]["ahead"], status["git"]["behind"], status["git"]["dirty"]) == (1, 1, True)
    assert owner_client.get(f"/api/projects/{repo_project.slug}/worktrees/T1").json()["id"] == tree.pk  # task key


def test_an_unknown_worktree_is_404(repo_project, owner_client):
    worktree_prepare(task=_task(repo_project, "T1"), shared_by_epic=False)
    base = f"/api/projects/{repo_project.slug}/worktrees"

    responses = [owner_client.get(f"{base}/E2"), owner_client.get(f"{base}/E9"),
                 owner_client.get(f"{base}/E9/conflicts"), _post(owner_client, f"{base}/E2/merge"),
                 _post(owner_client, f"{base}/E9/resolve", {"strategy": "theirs"}), owner_client.delete(f"{base}/E2")]

    bodies = [_refused(response, 404, "worktree_not_found") for response in responses]
    assert [body["error"] for body in bodies] == ["worktree_not_found"] * 6
    assert all("no worktree for" in body["message"] for body in bodies)


def test_merging_a_worktree_completes_the_task_waiting_in_it(repo_project, owner_client, viewer, api_client):
    task = _task(repo_project, "T1")
    _acceptance(task, "test -f hello.txt")
    tree = worktree_prepare(task=task, shared_by_epic=False)
    (Path(tree.path) / "hello.txt").write_text("hi\n")
    gitops.worktree_commit(Path(tree.path), "T1: hello")
    Task.objects.filter(pk=task.pk).update(status=Task.Status.MERGING)
    Worktree.objects.filter(pk=tree.pk).update(merge_task_ids=[task.pk])
    url = f"/api/projects/{repo_project.slug}/worktrees/E1/merge"
    conflicts = owner_client.get(f"/api/projects/{repo_project.slug}/worktrees/E1/conflicts").json()
    assert (conflicts["conflicts"], conflicts["files"], conflicts["into"]) == (False, [], "main")

    _refused(_post(api_client(viewer), url), 403, "permission_denied")
    response = _post(owner_client, url)

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["worktree_id"], body["status"], body["conflict_files"]) == (tree.pk, "merged", [])
    assert body["done"] == ["T1"] and body["epics_completed"] == []
    assert body["merged"] == git(repo_project.repo_path, "rev-parse", "main").strip()
    task.refresh_from_db()
    assert task.status == "done"
    assert _main_file(repo_project, "hello.txt") == "hi\n"
    assert _branches(repo_project) == [] and not Path(tree.path).exists()
    _refused(_post(owner_client, url), 409, "worktree_not_live")  # merged once


def test_a_worktree_with_an_open_session_is_not_merged_or_deleted(repo_project, owner_client):
    task = _task(repo_project, "T1")
    Task.objects.filter(pk=task.pk).update(status=Task.Status.RUNNING)
    tree = worktree_prepare(task=task, shared_by_epic=False)
    _session_for(task)  # queued in the worktree
    base = f"/api/projects/{repo_project.slug}/worktrees/E1"

    _refused(_post(owner_client, f"{base}/merge"), 409, "worktree_busy")
    _refused(owner_client.delete(base), 409, "worktree_busy")

    assert Path(tree.path).is_dir() and _branches(repo_project) == [tree.branch]


def test_deleting_a_worktree_removes_its_directory_and_branch(repo_project, owner_client, viewer, api_client):
    tree = worktree_prepare(task=_task(repo_project, "T1"), shared_by_epic=False)
    assert _branches(repo_project) == [tree.branch] and Path(tree.path).is_dir()
    url = f"/api/projects/{repo_project.slug}/worktrees/E1"
    _refused(api_client(viewer).delete(url), 403, "permission_denied")

    response = owner_client.delete(url)

    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["git"]) == ("removed", None)
    assert response.json()["removed_at"] is not None
    assert not Path(tree.path).exists() and _branches(repo_project) == []
    assert tree.branch not in git(repo_project.repo_path, "worktree", "list")
    _refused(owner_client.delete(url), 409, "worktree_not_live")


def test_a_dirty_worktree_is_deleted_only_with_force(repo_project, owner_client):
    tree = worktree_prepare(task=_task(repo_project, "T1"), shared_by_epic=False)
    (Path(tree.path) / "unsaved.txt").write_text("work in progress\n")
    url = f"/api/projects/{repo_project.slug}/worktrees/E1"

    body = _refused(owner_client.delete(url), 409, "worktree_dirty")

    assert "force" in body["message"]
    assert (Path(tree.path) / "unsaved.txt").exists() and _branches(repo_project) == [tree.branch]
    tree.refresh_from_db()
    assert tree.status == "active"

    response = owner_client.delete(f"{url}?force=true")

    assert response.status_code == 200 and response.json()["status"] == "removed"
    assert not Path(tree.path).exists() and _branches(repo_project) == []


# ------------------------------------------------------------------------------------------------ conflicts


def test_a_conflicting_merge_pauses_the_task_and_leaves_main_untouched(conflicted, owner_client):
    project, second = conflicted.project, conflicted.second

    second.refresh_from_db()
    assert second.status == "paused"
    assert "merge_conflict" in second.last_error and "shared.txt" in second.last_error
    tree = Worktree.objects.get(pk=conflicted.worktree.pk)
    assert (tree.status, tree.conflict_files) == ("conflict", ["shared.txt"])
    assert _main_file(project, "shared.txt") == "first\n"
    assert git(project.repo_path, "status", "--porcelain") == ""
    assert git(project.repo_path, "rev-parse", "HEAD").strip() == conflicted.main_head
    assert _branches(project) == [tree.branch]  # the first task's branch was merged and removed

    detail = owner_client.get(f"/api/projects/{project.slug}/worktrees/E3").json()
    assert (detail["status"], detail["conflict_files"], detail["git"]["ahead"]) == ("conflict", ["shared.txt"], 1)
    conflicts = owner_client.get(f"/api/projects/{project.slug}/worktrees/E3/conflicts").json()
    assert conflicts == {"worktree_id": tree.pk, "branch": tree.branch, "into": "main", "conflicts": True,
                         "files": ["shared.txt"]}


def test_resolving_theirs_completes_a_conflicted_task(conflicted, owner_client):
    project, second = conflicted.project, conflicted.second

    response = _post(owner_client, f"/api/projects/{project.slug}/worktrees/E3/resolve", {"strategy": "theirs"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["done"], body["conflict_files"], body["failures"]) == ("merged", ["T9"], [], [])
    assert body["epics_completed"] == ["E3"]
    second.refresh_from_db()
    assert second.status == "done"
    assert _main_file(project, "shared.txt") == "second\n"
    assert git(project.repo_path, "status", "--porcelain") == ""
    assert _branches(project) == [] and not Path(conflicted.worktree.path).exists()
    assert owner_client.get(f"/api/projects/{project.slug}/worktrees/E3/conflicts").json()["files"] == []


def test_a_resolved_task_no_longer_reports_the_conflict(conflicted, owner_client):
    _post(owner_client, f"/api/projects/{conflicted.project.slug}/worktrees/E3/resolve", {"strategy": "theirs"})

    conflicted.second.refresh_from_db()
    assert conflicted.second.status == "done"
    assert conflicted.second.last_error == ""


def test_resolving_ours_keeps_mains_version(conflicted, owner_client):
    project, second = conflicted.project, conflicted.second
    _acceptance(second, "test -f shared.txt")  # a check both versions pass

    response = _post(owner_client, f"/api/projects/{project.slug}/worktrees/E3/resolve", {"strategy": "ours"})

    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["done"]) == ("merged", ["T9"])
    second.refresh_from_db()
    assert second.status == "done"
    assert _main_file(project, "shared.txt") == "first\n"
    assert len(git(project.repo_path, "rev-list", "--parents", "-n", "1", "HEAD").split()) == 3  # a merge commit


def test_resolving_ours_when_the_task_needs_its_own_version_undoes_the_merge(conflicted, owner_client):
    project, second = conflicted.project, conflicted.second

    response = _post(owner_client, f"/api/projects/{project.slug}/worktrees/E3/resolve", {"strategy": "ours"})

    assert response.status_code == 200, response.content
    assert response.json()["done"] == [] and "T9: acceptance test failed" in response.json()["failures"][0]
    second.refresh_from_db()
    assert second.status == "paused" and "so it was not merged" in second.last_error
    assert git(project.repo_path, "rev-parse", "HEAD").strip() == conflicted.main_head
    assert git(project.repo_path, "status", "--porcelain") == ""


def test_manual_resolution_answers_409_with_the_worktree_path_then_a_merge_finishes_it(conflicted, owner_client):
    project, second, tree = conflicted.project, conflicted.second, conflicted.worktree
    base = f"/api/projects/{project.slug}/worktrees/E3"

    body = _refused(_post(owner_client, f"{base}/resolve", {"strategy": "manual"}), 409, "manual_resolution")

    assert body["details"] == {"path": tree.path, "files": ["shared.txt"]}
    assert tree.path in body["message"]
    assert Worktree.objects.get(pk=tree.pk).status == "conflict"

    subprocess.run(["git", "-c", "user.name=T", "-c", "user.email=t@example.com", "merge", "-q", "main"],
                   cwd=tree.path, capture_output=True, check=False)  # conflicts, as the message says
    (Path(tree.path) / "shared.txt").write_text("second\n")
    git(tree.path, "add", "shared.txt")
    git(tree.path, "commit", "-q", "--no-edit")
    assert owner_client.get(f"{base}/conflicts").json()["conflicts"] is False

    merged = _post(owner_client, f"{base}/merge")

    assert merged.status_code == 200, merged.content
    assert (merged.json()["status"], merged.json()["done"]) == ("merged", ["T9"])
    second.refresh_from_db()
    assert second.status == "done"
    assert _main_file(project, "shared.txt") == "second\n"


def test_an_unknown_resolution_strategy_answers_422(conflicted, owner_client):
    response = _post(owner_client, f"/api/projects/{conflicted.project.slug}/worktrees/E3/resolve",
                     {"strategy": "mine"})

    assert "strategy" in _invalid_fields(response)
    assert Worktree.objects.get(pk=conflicted.worktree.pk).status == "conflict"
    assert _main_file(conflicted.project, "shared.txt") == "first\n"


def test_deleting_a_conflicted_worktree_puts_its_task_back_in_the_queue(conflicted, owner_client):
    project, second = conflicted.project, conflicted.second

    response = owner_client.delete(f"/api/projects/{project.slug}/worktrees/E3")

    assert response.status_code == 200 and response.json()["status"] == "removed"
    second.refresh_from_db()
    assert second.status == "ready" and "removed" in second.last_error
    assert _branches(project) == [] and _main_file(project, "shared.txt") == "first\n"


# ------------------------------------------------------------------------------------------------ killing sessions


@pytest.fixture
def running_t1(repo_project) -> Task:
    repo_project.tasks.exclude(key="T1").update(status=Task.Status.CANCELLED)
    repo_project.tasks.filter(key="T1").update(status=Task.Status.RUNNING)
    Project.objects.filter(pk=repo_project.pk).update(status=Project.Status.RUNNING)
    return _task(repo_project, "T1")


def test_killing_a_queued_session_cancels_it_and_its_task(running_t1, owner_client, viewer, api_client):
    session = _session_for(running_t1)
    url = f"/api/sessions/{session.pk}/kill"
    _refused(_post(api_client(viewer), url), 403, "permission_denied")

    response = _post(owner_client, url)

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["stop_reason"]) == ("cancelled", "cancelled")
    running_t1.refresh_from_db()
    assert running_t1.status == "cancelled"


def test_killing_a_running_session_whose_worker_is_gone_ends_it_and_cancels_its_task(running_t1, owner_client):
    session = _session_for(running_t1)
    old = timezone.now() - timedelta(days=1)
    AgentSession.objects.filter(pk=session.pk).update(status="running", started_at=old, heartbeat_at=old,
                                                      lease_owner="gone-host:123")

    response = _post(owner_client, f"/api/sessions/{session.pk}/kill")

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["stop_reason"]) == ("cancelled", "killed") and body["ended_at"]
    session.refresh_from_db()
    assert session.status == "cancelled" and "worker was gone" in session.error
    running_t1.refresh_from_db()
    assert running_t1.status == "cancelled" and "killed" in running_t1.last_error


def test_killing_a_session_with_a_live_worker_asks_it_to_stop(running_t1, owner_client):
    session = _session_for(running_t1)
    AgentSession.objects.filter(pk=session.pk).update(status="running", started_at=timezone.now(),
                                                      heartbeat_at=timezone.now(), lease_owner="host:1")

    response = _post(owner_client, f"/api/sessions/{session.pk}/kill")

    assert response.status_code == 200 and response.json()["status"] == "running"
    session.refresh_from_db()
    assert session.cancel_requested is True
    running_t1.refresh_from_db()
    assert running_t1.status == "running"  # its worker stops it within a turn and settles the task


def test_killing_a_finished_session_is_a_conflict(running_t1, owner_client, outsider, api_client):
    session = _session_for(running_t1)
    AgentSession.objects.filter(pk=session.pk).update(status="completed", ended_at=timezone.now())
    url = f"/api/sessions/{session.pk}/kill"

    body = _refused(_post(owner_client, url), 409, "invalid_transition")

    assert "nothing to cancel" in body["message"]
    session.refresh_from_db()
    assert session.status == "completed"
    assert _post(api_client(outsider), url).status_code == 404


def test_a_run_on_a_new_project_is_refused_until_it_has_tasks(owner, owner_client):
    other = project_create(owner=owner, name="Blank")
    for url in (f"/api/projects/{other.slug}/parallel/start", f"/api/projects/{other.slug}/run"):
        _refused(_post(owner_client, url), 409, "no_plan")
    assert owner_client.get(f"/api/projects/{other.slug}/parallel/batches").json() == []
