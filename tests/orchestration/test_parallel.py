"""Parallel runs in one process: strategies, conflicts, worktree bootstrap, ports, attempts, the reaper, cancel."""

from __future__ import annotations

import shutil
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone
from git import Repo

from apps.agents.models import AgentSession
from apps.core.errors import ConflictError
from apps.interventions.models import PausedSession
from apps.interventions.services import pause_resolve
from apps.orchestration import execution, lifecycle, reaper, runs, scheduler, worktree_actions
from apps.orchestration.merging import task_complete
from apps.orchestration.models import ParallelBatch, Worktree
from apps.orchestration.repository import repo_ensure
from apps.orchestration.worktrees import worktree_prepare, worktrees_reconcile
from apps.projects.models import Epic, Project, Task
from apps.projects.services import project_status_move

pytestmark = pytest.mark.django_db

# Three epics, ten tasks: E1 builds a base; E2 and E3 each build on it in parallel; T10 needs both.
TEN_TASKS = {
    "E1": [("T1", [], "base.txt", "base"), ("T2", ["T1"], "b2.txt", "two"), ("T3", ["T1"], "b3.txt", "three")],
    "E2": [("T4", ["T2"], "a4.txt", "four"), ("T5", ["T2"], "a5.txt", "five"), ("T6", ["T4", "T5"], "a6.txt", "six")],
    "E3": [("T7", ["T3"], "c7.txt", "seven"), ("T8", ["T3"], "c8.txt", "eight"), ("T9", ["T7"], "c9.txt", "nine"),
           ("T10", ["T6", "T9"], "end.txt", "end")],
}


def _main_files(project: Project) -> dict[str, str]:
    repo = Repo(project.repo_path)
    return {b.path: b.data_stream.read().decode() for b in repo.commit("main").tree.traverse() if b.type == "blob"}


def _run_inline(project: Project, **options) -> Project:
    runs.jobs_drain(lambda: lifecycle.run_start(project=project, **options))
    project.refresh_from_db()
    return project


@pytest.mark.parametrize("strategy", ["ready", "batch"])
def test_both_strategies_build_the_whole_plan_and_merge_every_task(replay_project, strategy):
    project = _run_inline(replay_project(f"ten-{strategy}", TEN_TASKS), parallel=True, max_concurrency=3,
                          strategy=strategy)

    assert project.status == "completed" and project.strategy == strategy
    assert set(project.tasks.values_list("status", flat=True)) == {"done"}
    files = _main_files(project)
    assert all(files[path].strip() == content for tasks in TEN_TASKS.values() for _k, _d, path, content in tasks)
    batches = list(ParallelBatch.objects.filter(project=project).order_by("number"))
    assert [b.status for b in batches] == ["completed"] * len(batches) and len(batches) >= 4
    assert set(Epic.objects.filter(project=project).values_list("status", flat=True)) == {"done"}
    assert not Repo(project.repo_path).is_dirty(untracked_files=True)
    worktrees = Worktree.objects.filter(project=project)
    if strategy == "batch":  # the tasks of one epic in one batch shared that epic's worktree
        assert all(w.task_id is None and w.branch.startswith("yf/e") for w in worktrees)
        assert worktrees.count() < project.tasks.count()
    else:
        assert worktrees.count() == project.tasks.count() and all(w.task_id for w in worktrees)
    assert set(worktrees.values_list("status", flat=True)) == {"merged"}


def test_a_conflict_between_two_epics_is_detected_before_merging_and_resolving_theirs_completes_it(replay_project):
    project = replay_project("clash", {"E1": [("A", [], "shared.txt", "from A")],
                                       "E2": [("B", [], "shared.txt", "from B")]})
    lifecycle.run_start(project=project, max_concurrency=2)  # claims both; their jobs are queued, not run yet
    sessions = {s.task.key: s for s in AgentSession.objects.filter(project=project).select_related("task")}
    for session in sessions.values():  # both agents start from the same main, as parallel agents do
        worktree_prepare(task=session.task, shared_by_epic=False)
    before_b = None
    for key in ("A", "B"):
        if key == "B":
            before_b = Repo(project.repo_path).head.commit.hexsha
        execution.task_session_execute(session=sessions[key])

    b = Task.objects.get(project=project, key="B")
    assert b.status == "paused" and "merge_conflict" in b.last_error and "shared.txt" in b.last_error
    conflicted = Worktree.objects.get(project=project, task=b)
    assert conflicted.status == "conflict" and conflicted.conflict_files == ["shared.txt"]
    repo = Repo(project.repo_path)
    assert repo.head.commit.hexsha == before_b and not repo.is_dirty(untracked_files=True)  # nothing half-merged
    assert _main_files(project)["shared.txt"].strip() == "from A"
    project.refresh_from_db()
    assert project.status == "paused"

    result = worktree_actions.worktree_merge_request(worktree=conflicted, side="theirs")

    b.refresh_from_db()
    project.refresh_from_db()
    assert result.ok and result.done == ["B"] and b.status == "done"
    assert _main_files(project)["shared.txt"].strip() == "from B"
    assert project.status == "completed"
    assert "passed" in set(b.tests.values_list("result", flat=True))


def test_dependents_of_a_conflicted_task_wait_for_the_resolution(replay_project):
    project = replay_project("waits", {"E1": [("A", [], "x.txt", "A")],
                                       "E2": [("B", [], "x.txt", "B"), ("C", ["B"], "c.txt", "C")]})
    lifecycle.run_start(project=project, max_concurrency=2)
    sessions = {s.task.key: s for s in AgentSession.objects.filter(project=project).select_related("task")}
    for session in sessions.values():
        worktree_prepare(task=session.task, shared_by_epic=False)
    runs.jobs_drain(lambda: [execution.task_session_execute(session=sessions[k]) for k in ("A", "B")])

    statuses = dict(project.tasks.values_list("key", "status"))
    assert statuses == {"A": "done", "B": "paused", "C": "pending"}
    # People see it as an intervention on B's (completed) session, with the files.
    pause = PausedSession.objects.get(project=project, resolved=False)
    assert pause.pause_type == "merge_conflict" and pause.session == sessions["B"]
    assert pause.blocker_info["files"] == ["x.txt"]
    # Resuming while the branch still conflicts is refused, and the pause stays open.
    with pytest.raises(ConflictError, match="still does not merge"):
        pause_resolve(pause=pause, by="alice", notes="try again")
    assert not PausedSession.objects.get(pk=pause.pk).resolved

    runs.jobs_drain(lambda: worktree_actions.worktree_merge_request(
        worktree=Worktree.objects.get(project=project, status="conflict"), side="ours"))

    # "ours" keeps A's x.txt, so B's acceptance test fails on the merged result: the merge is undone, C waits.
    b = project.tasks.get(key="B")
    assert b.status == "paused" and "so it was not merged" in b.last_error
    assert dict(project.tasks.values_list("key", "status"))["C"] == "pending"
    assert _main_files(project)["x.txt"].strip() == "A"

    runs.jobs_drain(lambda: worktree_actions.worktree_merge_request(
        worktree=Worktree.objects.get(project=project, task=b), side="theirs"))

    assert dict(project.tasks.values_list("key", "status")) == {"A": "done", "B": "done", "C": "done"}
    closed = PausedSession.objects.get(project=project, session=sessions["B"])
    assert closed.resolved and closed.resolved_by == "merge"


def test_a_worktree_gets_the_env_files_the_setup_command_and_its_own_ports(replay_project, claude, settings):
    project = replay_project("boot", {"E1": [("A", [], "a.txt", "A"), ("B", [], "b.txt", "B")]},
                             setup_command="echo ready > setup.done", env_files=[".env", ".env.*"])
    settings.LLM_PROVIDER = "auto"
    repo = Path(repo_ensure(project).working_dir)
    (repo / ".env").write_text("API_URL=http://localhost\n")
    (repo / ".env.test").write_text("DEBUG=1\n")
    a, b = project.tasks.order_by("key")

    first = worktree_prepare(task=a, shared_by_epic=False)
    second = worktree_prepare(task=b, shared_by_epic=False)

    for worktree in (first, second):
        path = Path(worktree.path)
        assert (path / ".env").read_text() == "API_URL=http://localhost\n" and (path / ".env.test").exists()
        assert (path / "setup.done").read_text() == "ready\n"
        assert "copied .env" in worktree.setup_log
    assert set(first.ports).isdisjoint(second.ports) and len(first.ports) == settings.WORKTREE_PORT_COUNT
    assert worktree_prepare(task=a, shared_by_epic=False).pk == first.pk  # reused, not re-created

    claude.tool_use("run_command", {"command": "echo $PORT $YF_PORT_RANGE > port.txt"})
    claude.tool_use("update_task_status", {"status": "done", "evidence": "port.txt"})
    claude.text("Done.")
    a.tests.update(command="test -s port.txt")
    Task.objects.filter(pk=a.pk).update(status="running")
    session = runs.session_create(project=project, task=a, kind="coding", model="m", provider="anthropic",
                                  workdir=first.path)
    execution.task_session_execute(session=session)

    port = _main_files(project)["port.txt"].split()
    assert int(port[0]) == first.port_base and port[1] == f"{first.port_base}-{first.port_base + 9}"
    first.refresh_from_db()
    assert first.status == "merged"
    third = worktree_prepare(task=Task.objects.get(pk=a.pk), shared_by_epic=False)
    assert third.port_base == first.port_base  # a merged worktree released its ports


def test_a_failing_setup_command_fails_the_attempt_with_its_output(replay_project, settings):
    settings.TASK_MAX_ATTEMPTS = 1
    project = replay_project("badsetup", {"E1": [("A", [], "a.txt", "A")]}, setup_command="echo missing-tool; exit 3")

    _run_inline(project)

    task = project.tasks.get()
    assert task.status == "paused" and "setup command failed" in task.last_error and "missing-tool" in task.last_error
    assert not Worktree.objects.filter(project=project, status__in=["active", "conflict"]).exists()


def test_runs_are_refused_while_the_queue_is_over_its_bound(replay_project, settings):
    from django_q.tasks import async_task

    settings.RUN_QUEUE_LIMIT = 1
    project = replay_project("busy", {"E1": [("A", [], "a.txt", "A")]})
    async_task("math.floor", 1.5)
    async_task("math.floor", 2.5)

    with pytest.raises(ConflictError, match="queue holds 2 jobs .limit 1.*start more workers") as caught:
        lifecycle.run_start(project=project)

    assert caught.value.code == "queue_full"
    project.refresh_from_db()
    assert project.status != "running" and not project.sessions.exists()


def test_the_reaper_requeues_a_session_whose_lease_expired_and_it_completes_once(replay_project):
    project = replay_project("lost", {"E1": [("A", [], "a.txt", "A")]})
    lifecycle.run_start(project=project)  # the job is queued; no worker will run it: the worker "died"
    session = project.sessions.get()
    AgentSession.objects.filter(pk=session.pk).update(status="running", lease_owner="dead-host:1",
                                                      heartbeat_at=timezone.now() - timedelta(minutes=5))

    runs.jobs_drain(reaper.reap)

    session.refresh_from_db()
    task = project.tasks.get()
    assert session.status == "completed" and task.status == "done" and task.attempts == 1
    assert session.events.filter(type="lost").count() == 1
    assert project.sessions.count() == 1  # continued, not duplicated


def test_a_session_lost_too_often_pauses_its_task_instead_of_retrying_forever(replay_project, settings):
    settings.TASK_MAX_ATTEMPTS = 2
    project = replay_project("flaky", {"E1": [("A", [], "a.txt", "A")]})
    lifecycle.run_start(project=project)
    session = project.sessions.get()
    Task.objects.filter(project=project).update(attempts=1)
    AgentSession.objects.filter(pk=session.pk).update(status="running", lease_owner="dead-host:1",
                                                      heartbeat_at=timezone.now() - timedelta(minutes=5))

    report = reaper.reap()

    session.refresh_from_db()
    task = project.tasks.get()
    assert report["given_up"] == [session.pk] and session.status == "failed" and session.stop_reason == "lost"
    assert task.status == "paused" and "lost 2 times" in task.last_error


def test_a_live_session_is_left_alone_by_the_reaper(replay_project):
    project = replay_project("alive", {"E1": [("A", [], "a.txt", "A")]})
    lifecycle.run_start(project=project)
    session = project.sessions.get()
    AgentSession.objects.filter(pk=session.pk).update(status="running", lease_owner="busy-host:1",
                                                      heartbeat_at=timezone.now())

    assert reaper.reap()["requeued"] == []
    session.refresh_from_db()
    assert session.status == "running" and session.lease_owner == "busy-host:1"


def test_reconcile_repairs_records_whose_worktree_vanished_and_reports_strays(replay_project):
    project = replay_project("drift", {"E1": [("A", [], "a.txt", "A")]})
    worktree = worktree_prepare(task=project.tasks.get(), shared_by_epic=False)
    shutil.rmtree(worktree.path)
    stray = Path(worktree.path).parent / "left-over"
    stray.mkdir()

    report = worktrees_reconcile(project=project)

    worktree.refresh_from_db()
    assert worktree.status == "removed" and report.missing == [worktree.branch]
    assert "left-over" in report.pruned and not stray.exists()


def test_the_concurrency_limit_caps_claims(replay_project):
    wide = {"E1": [(f"T{n}", [], f"f{n}.txt", str(n)) for n in range(6)]}
    project = replay_project("wide", wide)

    lifecycle.run_start(project=project, max_concurrency=4)

    assert project.tasks.filter(status="running").count() == 4 and project.sessions.count() == 4
    scheduler.schedule(project_id=project.pk)
    assert project.tasks.filter(status="running").count() == 4  # no free slot, no new claim


def test_a_sequential_run_works_one_task_at_a_time(replay_project):
    project = replay_project("seq", {"E1": [(f"T{n}", [], f"f{n}.txt", str(n)) for n in range(3)]})
    lifecycle.run_start(project=project, parallel=False)
    assert project.tasks.filter(status="running").count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_twenty_concurrent_completions_complete_their_epic_exactly_once(owner):
    from apps.projects.plan import plan_import
    from apps.projects.services import project_create

    project = project_create(owner=owner, name="twenty")
    plan_import(project=project, data={"epics": [{"key": "E", "title": "Epic", "tasks": [
        {"key": f"T{n}", "title": f"Task {n}"} for n in range(20)]}]})
    project.tasks.update(status="merging")
    barrier = threading.Barrier(20)
    results: list[bool] = []

    def complete(task_id: int) -> None:
        try:
            task = Task.objects.get(pk=task_id)
            barrier.wait(timeout=30)
            results.append(task_complete(task=task))
        finally:
            connection.close()

    threads = [threading.Thread(target=complete, args=(pk,)) for pk in project.tasks.values_list("pk", flat=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(results) == 20 and results.count(True) == 1
    assert Epic.objects.get(project=project).status == "done"
    assert set(project.tasks.values_list("status", flat=True)) == {"done"}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("round_", range(3))
def test_sixteen_concurrent_completions_across_epics_with_the_scheduler_never_deadlock(owner, settings, round_):
    """Completions (project, epic and task rows, events) race the scheduler (project row, claims, sessions) at
    concurrency 8: one lock order and FOR NO KEY UPDATE leave no cycle, and a lost race is retried."""
    from apps.projects.plan import plan_import
    from apps.projects.services import project_create

    settings.LLM_PROVIDER = "replay"
    project = project_create(owner=owner, name=f"sixteen-{round_}", max_concurrency=8)
    # Each epic: four tasks merging, and a fifth waiting for the first of them (claimed while its epic completes).
    plan_import(project=project, data={"epics": [{"key": f"E{e}", "title": f"Epic {e}", "tasks": [
        *({"key": f"T{e}{n}", "title": f"Task {e}{n}"} for n in range(4)),
        {"key": f"N{e}", "title": f"Next {e}", "depends_on": [f"T{e}0"]}]} for e in range(4)]})
    project.tasks.exclude(key__startswith="N").update(status="merging")
    project_status_move(project=project, to="running")
    ids = list(project.tasks.exclude(key__startswith="N").values_list("pk", flat=True))
    barrier, errors, epics_done = threading.Barrier(len(ids)), [], []

    def complete(task_id: int) -> None:
        try:
            task = Task.objects.get(pk=task_id)
            barrier.wait(timeout=30)
            epics_done.append(task_complete(task=task))
            scheduler.schedule(project_id=project.pk)
        except Exception as exc:  # collected: the assertion below names it
            errors.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=complete, args=(pk,)) for pk in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == [] and len(epics_done) == 16 and not any(epics_done)  # each epic still has its N task
    assert set(project.tasks.exclude(key__startswith="N").values_list("status", flat=True)) == {"done"}
    followers = project.tasks.filter(key__startswith="N")
    assert set(followers.values_list("status", flat=True)) == {"running"} and project.sessions.count() == 4


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_cancelling_a_run_kills_a_running_command_within_seconds(claude, task):
    task.project.tasks.exclude(pk=task.pk).update(status="cancelled")
    claude.tool_use("run_command", {"command": "sleep 120", "timeout_seconds": 600})
    claude.text("never reached")
    project_status_move(project=task.project, to="running")
    session = runs.session_create(project=task.project, task=task, kind="coding", model="m", provider="anthropic",
                                  workdir="")
    worker = threading.Thread(target=lambda: (execution.task_session_execute(session=session), connection.close()))
    worker.start()
    deadline = time.monotonic() + 30
    while not session.events.filter(type="tool_use").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)
    started = time.monotonic()

    lifecycle.run_cancel(project=task.project)
    worker.join(timeout=30)

    assert not worker.is_alive() and time.monotonic() - started < 10
    session.refresh_from_db()
    task.refresh_from_db()
    assert session.status == "cancelled" and task.status == "cancelled"
