"""Runs through the scheduler: each claimed task works in its own worktree; done means its acceptance tests passed
in the worktree, its branch merged into main, and the tests passed again on main."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from git import Repo

from apps.agents.models import AgentSession
from apps.core.errors import ConflictError
from apps.orchestration import execution, lifecycle, runs
from apps.orchestration.models import Worktree
from apps.orchestration.worktrees import branch_for, path_for
from apps.projects.services import project_create, project_status_move

pytestmark = pytest.mark.django_db
KVSTORE_SPEC = Path(__file__).resolve().parents[2] / "examples" / "kvstore" / "spec.md"


def _session_for(task):
    """A session as the scheduler creates it for a claimed task: its workdir is the task's own worktree."""
    workdir = path_for(task.project, branch_for(task, shared_by_epic=False))
    return runs.session_create(project=task.project, task=task, kind="coding", model="claude-sonnet-5-5",
                               provider="anthropic", workdir=str(workdir))


def _execute(session):
    execution.task_session_execute(session=session)
    session.refresh_from_db()
    session.task.refresh_from_db()
    return session.task


def _main_subjects(project):
    return [c.summary for c in Repo(project.repo_path).iter_commits("main", first_parent=True)]


@pytest.fixture(autouse=True)
def only_t1(request):
    """Tests with the `task` fixture script one agent: the plan's other tasks are set aside so none is claimed."""
    if "task" in request.fixturenames:
        task = request.getfixturevalue("task")
        task.project.tasks.exclude(pk=task.pk).update(status="cancelled")


@pytest.fixture
def one_attempt(settings):
    settings.TASK_MAX_ATTEMPTS = 1


@pytest.fixture
def kvstore(settings, owner):
    settings.ANTHROPIC_API_KEY = None  # the offline replay model plays examples/kvstore/replay
    return project_create(owner=owner, name="kvstore", spec=KVSTORE_SPEC.read_text())


def test_the_kvstore_example_is_planned_and_built_by_the_replay_model(kvstore):
    runs.jobs_drain(lambda: runs.planning_start(project=kvstore))
    runs.jobs_drain(lambda: lifecycle.run_start(project=kvstore))

    kvstore.refresh_from_db()
    assert kvstore.status == "completed"
    assert set(kvstore.tasks.values_list("status", flat=True)) == {"done"}
    assert set(kvstore.epics.values_list("status", flat=True)) == {"done"}
    repo = Repo(kvstore.repo_path)
    merges = [c for c in repo.iter_commits("main", first_parent=True)][:-1]
    assert len(merges) == 6 and all(len(c.parents) == 2 for c in merges)  # one --no-ff merge per task
    assert sorted(c.message.split("YokeFlow-Task: ")[1].split()[0] for c in merges) == [f"T{n}" for n in range(1, 7)]
    assert not repo.is_dirty(untracked_files=True) and repo.active_branch.name == "main"
    assert repo.git.branch("--list", "yf/*") == ""  # merged branches and their worktrees are cleaned up
    assert set(Worktree.objects.filter(project=kvstore).values_list("status", flat=True)) == {"merged"}
    assert not any(Path(w.path).exists() for w in Worktree.objects.filter(project=kvstore))
    for test in kvstore.tasks.get(key="T2").tests.all():
        assert test.result == "passed" and "OK" in test.evidence and test.evidence.startswith("[repo]")
    suite = subprocess.run(["python3", "-m", "unittest", "discover", "-s", "tests"], cwd=repo.working_dir,
                           capture_output=True, text=True, timeout=120)
    assert suite.returncode == 0, suite.stderr
    sessions = AgentSession.objects.filter(project=kvstore, kind="coding")
    assert sessions.count() == 6 and set(sessions.values_list("status", flat=True)) == {"completed"}
    assert all("/worktrees/yf__" in s.workdir for s in sessions)


def test_a_task_whose_acceptance_tests_fail_is_retried_then_paused_and_nothing_reaches_main(claude, task, settings):
    settings.TASK_MAX_ATTEMPTS = 2
    for _ in range(2):
        claude.tool_use("write_file", {"path": "wrong.txt", "content": "oops"})
        claude.tool_use("update_task_status", {"status": "done", "evidence": "trust me"})
        claude.text("Done.")
    project = task.project
    project_status_move(project=project, to="running")

    runs.jobs_drain(lambda: _execute(_session_for(task)))

    task.refresh_from_db()
    project.refresh_from_db()
    assert task.status == "paused" and task.attempts == 2
    assert "failed 2 times" in task.last_error and "acceptance test failed" in task.last_error
    assert project.status == "paused"
    assert task.sessions.count() == 2 and task.tests.get().result == "failed"
    assert _main_subjects(project) == ["Initial commit"]


def test_a_paused_session_pauses_its_task_and_continues_with_the_notes(claude, task):
    claude.tool_use("request_help", {"reason": "which file name?"})
    project = task.project
    project_status_move(project=project, to="running")
    session = _session_for(task)
    runs.jobs_drain(lambda: _execute(session))
    task.refresh_from_db()
    assert task.status == "paused" and "which file name" in task.last_error

    claude.tool_use("write_file", {"path": "hello.txt", "content": "hi"})
    claude.tool_use("update_task_status", {"status": "done", "evidence": "hello.txt"})
    claude.text("Done.")
    runs.jobs_drain(lambda: runs.session_continue(session=session, notes="call it hello.txt", by="olivia"))

    session.refresh_from_db()
    task.refresh_from_db()
    assert session.status == "completed" and task.status == "done"
    assert (Path(project.repo_path) / "hello.txt").exists()
    resumed = claude.requests[1]["messages"][-1]["content"][-1]["text"]
    assert "call it hello.txt" in resumed and "olivia" in resumed


def test_a_finished_session_cannot_continue(claude, task, one_attempt):
    claude.text("nothing")
    claude.text("nothing")
    claude.text("nothing")
    session = _session_for(task)
    _execute(session)
    with pytest.raises(ConflictError, match="finished session cannot continue"):
        runs.session_continue(session=session)


def test_a_run_needs_a_plan_and_only_runs_once(project, planned_project):
    empty = project_create(owner=project.owner, name="Empty")
    with pytest.raises(ConflictError, match="no plan yet"):
        lifecycle.run_start(project=empty)
    lifecycle.run_start(project=planned_project)
    with pytest.raises(ConflictError, match="already running"):
        lifecycle.run_start(project=planned_project)


@pytest.mark.jail
def test_a_git_hook_planted_by_the_agent_does_not_run_when_yokeflow_commits_and_merges(claude, task, tmp_path):
    marker = tmp_path / "hook-ran"
    hook = "#!/bin/sh\ntouch " + str(marker) + "\n"
    plant = ("import pathlib, subprocess; d = subprocess.check_output(['git', 'rev-parse', '--git-common-dir'], "
             "text=True).strip(); p = pathlib.Path(d, 'hooks'); p.mkdir(exist_ok=True); "
             "[ (p / n).write_text(" + repr(hook) + ") or (p / n).chmod(0o755) for n in "
             "('pre-commit', 'post-merge', 'pre-merge-commit', 'commit-msg') ]")
    claude.tool_use("run_command", {"command": f"python3 -c \"{plant}\""})
    claude.tool_use("write_file", {"path": "hello.txt", "content": "hi"})
    claude.tool_use("update_task_status", {"status": "done", "evidence": "ok"})
    claude.text("Done.")

    task = _execute(_session_for(task))

    # The jail binds the repository's git directory read-only: the hook is never written, so never runs.
    assert task.status == "done" and not (Path(task.project.repo_path) / ".git/hooks/pre-commit").exists()
    assert not marker.exists()
    assert _main_subjects(task.project)[0].startswith("Merge T1")


def test_an_acceptance_command_the_sandbox_refuses_fails_the_task_with_the_reason(claude, task, one_attempt):
    test = task.tests.get()
    test.command = "sudo test -f hello.txt"
    test.save()
    claude.tool_use("write_file", {"path": "hello.txt", "content": "hi"})
    claude.tool_use("update_task_status", {"status": "done", "evidence": "ok"})
    claude.text("Done.")

    task = _execute(_session_for(task))

    test.refresh_from_db()
    assert task.status == "paused" and "acceptance test failed" in task.last_error
    assert test.result == "error" and test.evidence.startswith("not run:")


def test_cancelling_a_paused_session_cancels_its_task_and_frees_the_run(claude, task):
    from apps.agents.services import session_request_cancel

    claude.tool_use("request_help", {"reason": "stuck"})
    project = task.project
    project_status_move(project=project, to="running")
    session = _session_for(task)
    _execute(session)
    session.refresh_from_db()

    session_request_cancel(session=session)

    task.refresh_from_db()
    project.refresh_from_db()
    assert task.status == "cancelled" and project.status == "paused"
    lifecycle.run_start(project=project)  # not wedged in "running"
    task.refresh_from_db()
    assert task.status == "running"  # the restarted run takes the cancelled task up again


def test_continuing_a_session_that_spent_part_of_the_budget_does_not_count_it_twice(claude, task):
    from decimal import Decimal

    project = task.project
    project.budget_usd = Decimal("1.00")
    project.save()
    claude.tool_use("request_help", {"reason": "stuck"}, usage={"input_tokens": 300_000})  # $0.60 on Sonnet
    session = _session_for(task)
    _execute(session)
    claude.tool_use("write_file", {"path": "hello.txt", "content": "hi"})
    claude.tool_use("update_task_status", {"status": "done", "evidence": "ok"})
    claude.text("Done.")

    runs.jobs_drain(lambda: runs.session_continue(session=session, notes="go on"))

    session.refresh_from_db()
    assert session.status == "completed", session.error


RIGGING = {
    # the policy refuses `git config core.fsmonitor …`; an agent set on it goes around the policy:
    "core.fsmonitor": "python3 -c \"import subprocess; subprocess.run(['git', 'config', 'core.fsmonitor', "
                      "'env > leak.txt'])\"",
    "HEAD is on elsewhere": "git checkout -q -b elsewhere",
}


def _rigged_session(claude, task, command: str):
    claude.tool_use("run_command", {"command": command})
    claude.tool_use("write_file", {"path": "hello.txt", "content": "hi"})
    claude.tool_use("update_task_status", {"status": "done", "evidence": "ok"})
    claude.text("Done.")
    task = _execute(_session_for(task))
    return task, Path(task.project.repo_path)


@pytest.mark.parametrize("reason", sorted(RIGGING))
def test_yokeflow_refuses_to_commit_what_the_agent_rigged(claude, task, reason, monkeypatch, one_attempt, settings):
    """Without the jail (SANDBOX=policy) the rigging works, and YokeFlow refuses to commit on top of it."""
    settings.SANDBOX = "policy"
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret")

    task, repo = _rigged_session(claude, task, RIGGING[reason])

    assert task.status == "paused" and reason in task.last_error
    assert not list(repo.parent.rglob("leak.txt"))
    assert _main_subjects(task.project) == ["Initial commit"]


@pytest.mark.jail
@pytest.mark.parametrize("reason", sorted(RIGGING))
def test_in_the_jail_the_agent_cannot_rig_the_repository_at_all(claude, task, reason, one_attempt):
    task, repo = _rigged_session(claude, task, RIGGING[reason])

    assert task.status == "done", task.last_error
    assert "fsmonitor" not in (repo / ".git/config").read_text()
    assert not list(repo.parent.rglob("leak.txt"))
    assert _main_subjects(task.project)[0].startswith("Merge T1")


def test_a_failed_task_can_be_retried_from_the_cli_and_the_api(claude, task, api_client, viewer, one_attempt):
    from tests.projects.test_cli import refused, yokeflow

    claude.tool_use("update_task_status", {"status": "done", "evidence": "not really"})
    claude.text("Done.")
    _execute(_session_for(task))
    project = task.project
    project.tasks.filter(key="T2").update(status="pending")
    assert "only failed, paused or cancelled" in str(refused("retry", project.slug, "T2"))
    assert api_client(viewer).post(f"/api/projects/{project.slug}/tasks/T1/retry").status_code == 403

    assert "task T1 is ready again" in yokeflow("retry", project.slug, "T1")

    task.refresh_from_db()
    assert task.attempts == 0
    again = api_client(project.owner).post(f"/api/projects/{project.slug}/tasks/T1/retry")
    assert again.status_code == 409 and again.json()["error"] == "not_retryable"
