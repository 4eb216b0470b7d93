"""A real django-q2 worker is killed in the middle of a session; a new worker continues it from its checkpoint."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.db import connection
from django_q.tasks import async_task
from git import Repo

from apps.orchestration import runs
from tests.orchestration.cluster import kill, start_cluster, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def _start_worker(fake, log: Path):
    return start_cluster(log, ANTHROPIC_API_KEY="test-key", ANTHROPIC_BASE_URL=fake.base_url,
                         ANTHROPIC_MAX_RETRIES="0")


def test_a_killed_workers_session_continues_on_a_new_worker_with_gapless_events(claude, coding_session, tmp_path):
    log = tmp_path / "worker.log"
    claude.tool_use("write_file", {"path": "hello.txt", "content": "hi\n"})
    claude.reply([{"type": "text", "text": "never delivered: the worker dies first"}], delay=60)
    claude.tool_use("update_task_status", {"status": "done", "evidence": "hello.txt exists"})
    claude.text("Done.")
    session = coding_session

    first = _start_worker(claude, log)
    try:
        async_task("apps.orchestration.jobs.continue_task", session.pk)
        wait_for(lambda: len(claude.requests) >= 2, "the second model call", log)
    finally:
        kill(first)
    session.refresh_from_db()
    assert session.status == "running" and session.turns == 1
    events_before = session.last_seq

    second = _start_worker(claude, log)
    try:
        runs.session_continue(session=session, notes="the worker died; carry on", by="test", force=True)
        wait_for(lambda: session.refresh_from_db() or session.is_finished, "the session to finish", log)
        task = session.task
        wait_for(lambda: task.refresh_from_db() or task.status not in ("running", "merging"), "the merge", log)
    finally:
        kill(second)

    session.refresh_from_db()
    assert session.status == "completed" and session.attempts == 2, session.error
    seqs = list(session.events.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) > events_before
    resume = session.events.get(type="resume")
    assert resume.seq == events_before + 1 and "carry on" in resume.payload["text"]
    session.task.refresh_from_db()
    assert session.task.status == "done"
    assert Repo(session.project.repo_path).head.commit.summary.startswith("Merge T1")


def test_a_long_command_keeps_the_sessions_lease(claude, coding_session, settings):
    """The lease is renewed while a tool runs longer than the lease itself, so no reaper can steal the session."""
    import threading

    from apps.agents.coding import coding_session_run
    from apps.agents.services import session_claim
    from apps.core.errors import ConflictError

    settings.SESSION_LEASE_SECONDS = 3
    claude.tool_use("run_command", {"command": "sleep 5"})
    claude.tool_use("update_task_status", {"status": "done", "evidence": "slept"})
    claude.text("Done.")
    refused: list[str] = []

    def try_to_steal():
        time.sleep(4.5)  # past the lease, while `sleep 5` still runs
        try:
            session_claim(session=type(coding_session).objects.get(pk=coding_session.pk), owner="thief:1")
        except ConflictError as exc:
            refused.append(exc.message)
        finally:
            connection.close()

    thief = threading.Thread(target=try_to_steal)
    thief.start()
    outcome = coding_session_run(session=coding_session)
    thief.join()

    assert outcome.completed and refused and "heartbeat" in refused[0]
