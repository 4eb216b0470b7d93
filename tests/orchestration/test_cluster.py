"""Parallel runs on a real django-q2 cluster (PostgreSQL): several agents at once, and a worker killed mid-session."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django_q.models import Schedule
from git import Repo

from apps.agents.models import AgentSession
from apps.orchestration import lifecycle
from apps.orchestration.models import Worktree
from tests.fixtures import replay_script
from tests.orchestration.cluster import kill, start_cluster, wait_for
from tests.orchestration.test_parallel import TEN_TASKS, _main_files

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def _replay_env() -> dict[str, str]:
    return {"LLM_PROVIDER": "replay", "REPLAY_ROOT": str(settings.REPLAY_ROOT), "ANTHROPIC_API_KEY": ""}


def _max_overlap(sessions) -> int:
    """The most sessions that were running at the same moment."""
    moments = sorted([(s.started_at, 1) for s in sessions] + [(s.ended_at, -1) for s in sessions])
    running = peak = 0
    for _when, step in moments:
        running += step
        peak = max(peak, running)
    return peak


def test_a_cluster_of_workers_builds_a_ten_task_three_epic_plan_in_parallel(replay_project, tmp_path):
    log = tmp_path / "cluster.log"
    project = replay_project("cluster", TEN_TASKS, delay=1.0)
    cluster = start_cluster(log, Q_WORKERS="3", **_replay_env())
    try:
        lifecycle.run_start(project=project, parallel=True, max_concurrency=3)
        wait_for(lambda: project.refresh_from_db() or project.status != "running", "the run to end", log, 240)
    finally:
        kill(cluster)

    assert project.status == "completed", list(project.tasks.values_list("key", "status", "last_error"))
    files = _main_files(project)
    assert all(files[path].strip() == content for tasks in TEN_TASKS.values() for _k, _d, path, content in tasks)
    repo = Repo(project.repo_path)
    assert not repo.is_dirty(untracked_files=True) and repo.git.branch("--list", "yf/*") == ""
    tests = [t for task in project.tasks.all() for t in task.tests.all()]
    assert len(tests) == 10 and {t.result for t in tests} == {"passed"}
    assert all(t.evidence.startswith("[repo]") for t in tests)  # the last run was on main, after the merge
    sessions = list(AgentSession.objects.filter(project=project).order_by("started_at"))
    assert len(sessions) == 10 and {s.status for s in sessions} == {"completed"}
    assert _max_overlap(sessions) >= 2  # agents really worked at the same time
    workers = {s.lease_owner for s in sessions}
    assert len(workers) >= 2, workers
    assert set(Worktree.objects.filter(project=project).values_list("status", flat=True)) == {"merged"}


def test_a_killed_worker_is_reaped_and_its_task_completes_exactly_once(replay_project, tmp_path):
    log = tmp_path / "cluster.log"
    project = replay_project("crash", {"E1": [("A", [], "a.txt", "A")]})
    # The agent's first command blocks the first time (the worker is killed during it) and returns at once after.
    script = replay_script("a.txt", "A")
    script["turns"][0]["content"] = [{"type": "tool_use", "name": "run_command", "input": {
        "command": "test -f .started || (touch .started && sleep 120); echo A > a.txt"}}]
    (settings.REPLAY_ROOT / "crash" / "replay" / "A.json").write_text(json.dumps(script))
    first = start_cluster(log, **_replay_env())
    try:
        lifecycle.run_start(project=project)
        session = project.sessions.get()
        started = Path(session.workdir) / ".started"  # the command is running (killing sooner would re-run it)
        wait_for(started.exists, "the agent's first command", log)
    finally:
        kill(first)
    session.refresh_from_db()
    # Its reply is recorded (turn 1, checkpointed before its command ran); the command's result is not.
    assert session.status == "running" and session.turns == 1
    last_beat = session.heartbeat_at

    second = start_cluster(log, **_replay_env())
    try:
        # The reaper runs every REAPER_INTERVAL_MINUTES; bring its next run to just after the lease expires.
        Schedule.objects.filter(name=lifecycle.REAPER_NAME).update(
            next_run=session.heartbeat_at + timedelta(seconds=6))
        wait_for(lambda: session.refresh_from_db() or session.is_finished, "the reaped session to finish", log, 120)
        wait_for(lambda: project.refresh_from_db() or project.status != "running", "the run to end", log)
    finally:
        kill(second)

    task = project.tasks.get()
    assert session.status == "completed" and task.status == "done" and task.attempts == 1
    assert project.sessions.count() == 1 and session.events.filter(type="lost").count() == 1
    seqs = list(session.events.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    lost = session.events.get(type="lost").created
    # After the lease (5 s here), not long after: django-q2 looks at its schedules every 30 s.
    assert timedelta(seconds=5) <= lost - last_beat < timedelta(seconds=50)
    assert _main_files(project)["a.txt"].strip() == "A"
    assert len(list(Repo(project.repo_path).iter_commits("main", first_parent=True))) == 2  # initial + one merge
