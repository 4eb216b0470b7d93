"""PostgreSQL restarts under a running worker: the session's job waits for the database, continues from its
checkpoint, and the run completes with every transcript gapless; /ready and `yokeflow doctor` say not ready while
the database is down and ready once it is back."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections

from apps.agents.models import AgentSession
from apps.core.health import ready, run_checks
from apps.orchestration import lifecycle
from tests.orchestration.cluster import kill, start_cluster, wait_for
from tests.orchestration.test_events import TWO_EPICS

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def _cluster_name() -> tuple[str, str] | None:
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions or shutil.which("pg_ctlcluster") is None or os.geteuid() != 0:
        return None
    return versions[0], "main"


def _pg(action: str) -> None:
    """Stop (fast: open connections are cut, as in a crash or a failover) or start the server. A supervisor may
    have started it again already: `start` then reports it running, which is what we want."""
    version, name = _cluster_name()
    extra = ["--", "-m", "fast"] if action == "stop" else []
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, name, action, *extra],
                   check=action == "stop", capture_output=True, timeout=60)


def _wait(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return False


def _database_up() -> bool:
    return subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-q"], check=False).returncode == 0


@pytest.fixture
def restartable():
    if _cluster_name() is None:
        pytest.skip("restarting PostgreSQL needs root and pg_ctlcluster (Debian's cluster tools)")
    yield
    if not _database_up():  # never leave the machine without its database
        _pg("start")
    connections.close_all()


def test_a_restart_of_postgresql_mid_run_loses_no_events_and_the_run_completes(replay_project, tmp_path,
                                                                               restartable):
    project = replay_project("restart", TWO_EPICS, delay=1.5)
    log = tmp_path / "cluster.log"
    cluster = start_cluster(log, Q_WORKERS="2", LLM_PROVIDER="replay", REPLAY_ROOT=str(settings.REPLAY_ROOT),
                            ANTHROPIC_API_KEY="", DB_WAIT_SECONDS="60", QUEUED_STALL_SECONDS="5")
    try:
        lifecycle.run_start(project=project, parallel=True, max_concurrency=2)
        wait_for(lambda: AgentSession.objects.filter(project=project, turns__gte=1).exists(), "a first turn", log)
        connections.close_all()
        _pg("stop")
        down = run_checks()
        time.sleep(2)  # the agents' next calls and events now fail: their jobs must wait, not give up
        _pg("start")
        wait_for(_database_up, "PostgreSQL to accept connections", log, 60)
        connections.close_all()
        ended = _wait(lambda: project.refresh_from_db() or project.status != "running", 150)
        assert ended, (list(project.tasks.values_list("key", "status")),
                       list(project.sessions.values_list("pk", "status", "task__key")))
    finally:
        kill(cluster)

    assert not ready(down) and next(c for c in down if c.name == "database").ok is False
    assert ready(run_checks())
    assert project.status == "completed", (list(project.tasks.values_list("key", "status", "last_error")),
                                           Path(log).read_text()[-3000:])
    for session in AgentSession.objects.filter(project=project):
        seqs = list(session.events.order_by("seq").values_list("seq", flat=True))
        assert seqs == list(range(1, session.last_seq + 1)), f"session {session.pk} has gaps: {seqs}"
    assert "continues after reconnecting" in Path(log).read_text() or "database not reachable" in Path(
        log).read_text()
