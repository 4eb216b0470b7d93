"""Sequential runs: plan, then one coding session per ready task; done means tests re-ran and work committed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from git import Repo

from apps.agents.models import AgentSession
from apps.core.errors import ConflictError
from apps.orchestration import runs
from apps.projects.services import project_create

pytestmark = pytest.mark.django_db
KVSTORE_SPEC = Path(__file__).resolve().parents[2] / "examples" / "kvstore" / "spec.md"


def _session_for(task):
    return runs.session_create(project=task.project, task=task, kind="coding", model="claude-sonnet-5-5",
                               provider="anthropic", workdir=task.project.repo_path)


@pytest.fixture
def kvstore(settings, owner):
    settings.ANTHROPIC_API_KEY = None  # the offline replay model plays examples/kvstore/replay
    return project_create(owner=owner, name="kvstore", spec=KVSTORE_SPEC.read_text())


def test_the_kvstore_example_is_planned_and_built_by_the_replay_model(kvstore):
    runs.jobs_drain(lambda: runs.planning_start(project=kvstore))
    runs.jobs_drain(lambda: runs.run_start(project=kvstore))

    kvstore.refresh_from_db()
    assert kvstore.status == "completed"
    assert set(kvstore.tasks.values_list("status", flat=True)) == {"done"}
    repo = Repo(kvstore.repo_path)
    subjects = [c.summary for c in repo.iter_commits()]
    assert len(subjects) == 7 and subjects[-1] == "Initial commit"
    assert [s.split(":")[0] for s in reversed(subjects[:-1])] == ["T1", "T2", "T3", "T4", "T5", "T6"]
    assert "YokeFlow-Task: T6" in repo.head.commit.message
    assert not repo.is_dirty(untracked_files=True)
    for test in kvstore.tasks.get(key="T2").tests.all():
        assert test.result == "passed" and "OK" in test.evidence and test.last_run_at
    suite = subprocess.run(["python3", "-m", "unittest", "discover", "-s", "tests"], cwd=repo.working_dir,
                           capture_output=True, text=True, timeout=120)
    assert suite.returncode == 0, suite.stderr
    sessions = AgentSession.objects.filter(project=kvstore)
    assert sessions.count() == 7 and set(sessions.values_list("status", flat=True)) == {"completed"}


def test_a_task_whose_acceptance_tests_fail_is_not_done_and_nothing_is_committed(claude, task):
    claude.tool_use("write_file", {"path": "wrong.txt", "content": "oops"})
    claude.tool_use("update_task_status", {"status": "done", "evidence": "trust me"})
    claude.text("Done.")
    project = task.project
    runs._set_status(project, "running")
    session = _session_for(task)

    result = runs.coding_execute(session=session)

    task.refresh_from_db()
    project.refresh_from_db()
    assert result.outcome.completed and not result.done
    assert task.status == "failed" and "acceptance test failed" in task.last_error
    assert project.status == "failed"
    assert task.tests.get().result == "failed"
    assert [c.summary for c in Repo(project.repo_path).iter_commits()] == ["Initial commit"]


def test_a_paused_session_pauses_its_task_and_continues_with_the_notes(claude, task):
    claude.tool_use("request_help", {"reason": "which file name?"})
    project = task.project
    runs._set_status(project, "running")
    session = _session_for(task)
    runs.jobs_drain(lambda: runs.coding_execute(session=session))
    task.refresh_from_db()
    assert task.status == "paused" and "which file name" in task.last_error

    claude.tool_use("write_file", {"path": "hello.txt", "content": "hi"})
    claude.tool_use("update_task_status", {"status": "done", "evidence": "hello.txt"})
    claude.text("Done.")
    runs.jobs_drain(lambda: runs.session_continue(session=session, notes="call it hello.txt", by="olivia"))

    session.refresh_from_db()
    task.refresh_from_db()
    assert session.status == "completed" and task.status == "done"
    resumed = claude.requests[1]["messages"][-1]["content"][-1]["text"]
    assert "call it hello.txt" in resumed and "olivia" in resumed


def test_a_finished_session_cannot_continue(claude, coding_session):
    claude.text("nothing")
    claude.text("nothing")
    claude.text("nothing")
    runs.coding_execute(session=coding_session)
    coding_session.refresh_from_db()
    with pytest.raises(ConflictError, match="finished session cannot continue"):
        runs.session_continue(session=coding_session)


def test_a_run_needs_a_plan_and_only_runs_once(project, planned_project):
    empty = project_create(owner=project.owner, name="Empty")
    with pytest.raises(ConflictError, match="no plan yet"):
        runs.run_start(project=empty)
    runs.run_start(project=planned_project)
    with pytest.raises(ConflictError, match="already running"):
        runs.run_start(project=planned_project)


def test_a_git_hook_planted_by_the_agent_does_not_run_when_yokeflow_commits(claude, task, tmp_path):
    marker = tmp_path / "hook-ran"
    hook = "#!/bin/sh\ntouch " + str(marker) + "\n"
    claude.tool_use("run_command", {"command": "python3 -c \"import pathlib; p = pathlib.Path('.' + 'git/hooks/"
                                               "pre-commit'); p.write_text(" + repr(hook) + "); p.chmod(0o755)\""})
    claude.tool_use("write_file", {"path": "hello.txt", "content": "hi"})
    claude.tool_use("update_task_status", {"status": "done", "evidence": "ok"})
    claude.text("Done.")
    session = _session_for(task)

    result = runs.coding_execute(session=session)

    assert result.done and (Path(task.project.repo_path) / ".git/hooks/pre-commit").exists()
    assert not marker.exists()
    assert Repo(task.project.repo_path).head.commit.summary.startswith("T1:")


def test_an_acceptance_command_the_sandbox_refuses_fails_the_task_with_the_reason(claude, task):
    test = task.tests.get()
    test.command = "sudo test -f hello.txt"
    test.save()
    claude.tool_use("write_file", {"path": "hello.txt", "content": "hi"})
    claude.tool_use("update_task_status", {"status": "done", "evidence": "ok"})
    claude.text("Done.")
    session = _session_for(task)

    result = runs.coding_execute(session=session)

    task.refresh_from_db()
    test.refresh_from_db()
    assert not result.done and task.status == "failed"
    assert test.result == "error" and test.evidence.startswith("not run:")


def test_cancelling_a_paused_session_cancels_its_task_and_frees_the_run(claude, task):
    from apps.agents.services import session_request_cancel

    claude.tool_use("request_help", {"reason": "stuck"})
    project = task.project
    runs._set_status(project, "running")
    session = _session_for(task)
    runs.coding_execute(session=session)
    session.refresh_from_db()

    session_request_cancel(session=session)

    task.refresh_from_db()
    project.refresh_from_db()
    assert task.status == "cancelled" and project.status == "paused"
    runs.run_start(project=project)  # not wedged in "running"


def test_continuing_a_session_that_spent_part_of_the_budget_does_not_count_it_twice(claude, task):
    from decimal import Decimal

    project = task.project
    project.budget_usd = Decimal("1.00")
    project.save()
    claude.tool_use("request_help", {"reason": "stuck"}, usage={"input_tokens": 300_000})  # $0.60 on Sonnet
    session = _session_for(task)
    runs.coding_execute(session=session)
    claude.tool_use("write_file", {"path": "hello.txt", "content": "hi"})
    claude.tool_use("update_task_status", {"status": "done", "evidence": "ok"})
    claude.text("Done.")

    runs.jobs_drain(lambda: runs.session_continue(session=session, notes="go on"))

    session.refresh_from_db()
    assert session.status == "completed", session.error


@pytest.mark.parametrize(("command", "reason"), [
    # the sandbox refuses `git config core.fsmonitor …`; an agent set on it goes around the policy:
    ("python3 -c \"import subprocess; subprocess.run(['git', 'config', 'core.fsmonitor', 'env > leak.txt'])\"",
     "core.fsmonitor"),
    ("git checkout -q -b elsewhere", "HEAD is on elsewhere"),
])
def test_yokeflow_refuses_to_commit_what_the_agent_rigged(claude, task, command, reason, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret")
    claude.tool_use("run_command", {"command": command})
    claude.tool_use("write_file", {"path": "hello.txt", "content": "hi"})
    claude.tool_use("update_task_status", {"status": "done", "evidence": "ok"})
    claude.text("Done.")

    result = runs.coding_execute(session=_session_for(task))

    task.refresh_from_db()
    repo = Path(task.project.repo_path)
    assert not result.done and task.status == "failed" and reason in task.last_error
    assert not (repo / "leak.txt").exists()
    assert [c.summary for c in Repo(repo).iter_commits("main")] == ["Initial commit"]


def test_a_failed_tasks_work_is_set_aside_not_committed_by_the_next_task(claude, task):
    claude.tool_use("write_file", {"path": "half_done.txt", "content": "wip"})
    claude.tool_use("update_task_status", {"status": "done", "evidence": "not really"})
    claude.text("Done.")
    runs.coding_execute(session=_session_for(task))

    repo = Repo(task.project.repo_path)
    assert not repo.is_dirty(untracked_files=True)
    assert "unfinished work of T1" in repo.git.stash("list")


def test_a_failed_task_can_be_retried_from_the_cli_and_the_api(claude, task, api_client, viewer):
    from tests.projects.test_cli import refused, yokeflow

    claude.tool_use("update_task_status", {"status": "done", "evidence": "not really"})
    claude.text("Done.")
    runs.coding_execute(session=_session_for(task))
    project = task.project
    assert "only failed or cancelled" in str(refused("retry", project.slug, "T2"))
    assert api_client(viewer).post(f"/api/projects/{project.slug}/tasks/T1/retry").status_code == 403

    assert "task T1 is ready again" in yokeflow("retry", project.slug, "T1")

    project.refresh_from_db()
    assert project.status == "paused"
    again = api_client(project.owner).post(f"/api/projects/{project.slug}/tasks/T1/retry")
    assert again.status_code == 409 and again.json()["error"] == "not_retryable"
