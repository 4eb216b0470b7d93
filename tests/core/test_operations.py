"""Operations: structured, redacted logs with the work's ids; secrets out of transcripts; /metrics after a run;
/health, /ready and `yokeflow doctor`; the heartbeat that tells the web process a worker cluster is alive."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone
from django_q.models import OrmQ, Schedule
from git import Repo

from apps.agents.models import SessionEvent
from apps.core.health import HEARTBEAT_NAME
from apps.core.jobs import run_job
from apps.core.logging import structured_formatter
from apps.orchestration import lifecycle, runs
from tests.fixtures import replay_script
from tests.projects.test_cli import refused, yokeflow

pytestmark = pytest.mark.django_db
KEY = "sk-ant-api03-" + "Z9" * 20


@pytest.fixture
def json_log():
    """Every log line of the block, formatted as production formats it (JSON), one dict per line."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(structured_formatter("json"))
    root = logging.getLogger()
    root.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)


def _leaky_project(replay_project):
    """A one-task replay build whose agent runs a command that prints an API key."""
    project = replay_project("leaky", {"E1": [("A", [], "a.txt", "A")]})
    script = replay_script("a.txt", "A")
    script["turns"].insert(0, {"content": [{"type": "tool_use", "name": "run_command",
                                            "input": {"command": f"echo token is {KEY}"}}]})
    (settings.REPLAY_ROOT / "leaky" / "replay" / "A.json").write_text(json.dumps(script))
    return project


def test_a_session_logs_json_lines_with_its_ids_and_no_secret(replay_project, json_log):
    project = _leaky_project(replay_project)

    runs.jobs_drain(lambda: lifecycle.run_start(project=project))
    logging.getLogger("yokeflow.test").warning("the agent printed %s", KEY)

    session = project.sessions.get()
    lines = json_log()
    starts = [line for line in lines if line["event"].startswith(f"session {session.pk} ")]
    assert len(starts) == 2, lines
    for line in starts:
        assert line["project_id"] == project.pk and line["session_id"] == session.pk
        assert line["task_id"] == session.task_id and line["correlation_id"] and line["level"] == "info"
    assert not any(KEY in json.dumps(line) for line in lines)
    assert lines[-1]["event"] == "the agent printed [redacted]"


def test_a_transcript_shows_an_api_key_from_a_tool_output_redacted(replay_project):
    project = _leaky_project(replay_project)

    runs.jobs_drain(lambda: lifecycle.run_start(project=project))

    results = SessionEvent.objects.filter(session__project=project, type="tool_result")
    output = next(e.payload["content"] for e in results if "token is" in str(e.payload["content"]))
    assert "token is [redacted]" in output and KEY not in output
    assert not SessionEvent.objects.filter(payload__icontains=KEY).exists()
    assert project.sessions.get().checkpoint and KEY not in json.dumps(project.sessions.get().checkpoint.messages)


def test_a_request_id_is_echoed_and_carried_into_the_agents_commit(replay_project, owner, api_client,
                                                                    django_capture_on_commit_callbacks):
    project = replay_project("traced", {"E1": [("A", [], "a.txt", "A")]})
    client = api_client(owner)

    with django_capture_on_commit_callbacks(execute=True):  # the job is put on the real django-q2 queue
        response = client.post(f"/api/projects/{project.pk}/run", headers={"X-Request-ID": "req-4711"})
    assert response.status_code == 202 and response["X-Request-ID"] == "req-4711"
    queued = OrmQ.objects.get().task
    assert queued["func"] == "apps.core.jobs.run_job" and queued["args"][1]["correlation_id"] == "req-4711"
    run_job(*queued["args"])  # as a worker runs it: in the context the job carries

    messages = [c.message for c in Repo(project.repo_path).iter_commits("main")]
    assert any("YokeFlow-Correlation-Id: req-4711" in message for message in messages), messages
    merge = next(message for message in messages if message.startswith("Merge "))
    assert "YokeFlow-Correlation-Id: req-4711" in merge  # the merge commit on main too
    assert client.get("/api/projects/", headers={"X-Request-ID": "bad id;rm"})["X-Request-ID"] != "bad id;rm"


def test_metrics_after_a_replay_run_show_sessions_llm_tools_tasks_and_requests(replay_project, client, settings):
    project = replay_project("measured", {"E1": [("A", [], "a.txt", "A"), ("B", ["A"], "b.txt", "B")]})
    runs.jobs_drain(lambda: lifecycle.run_start(project=project))
    client.get("/login/")

    text = client.get("/metrics").text

    assert 'yokeflow_sessions{status="completed"} 2.0' in text
    assert "yokeflow_llm_latency_seconds_count" in text and 'yokeflow_llm_tokens_total{' in text
    assert 'yokeflow_tool_execution_seconds_count{outcome="ok",tool="write_file"}' in text
    assert "yokeflow_task_duration_seconds_count" in text and "yokeflow_queue_depth" in text
    assert 'yokeflow_merges{result="merged"} 2.0' in text and "# TYPE yokeflow_interventions gauge" in text
    assert 'yokeflow_http_request_seconds_count{method="GET",route="login/",status="200"}' in text


def test_metrics_need_the_token_or_an_allowed_network(client, settings):
    settings.METRICS_TOKEN = "scrape-secret-123"

    outside = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    wrong = client.get("/metrics", REMOTE_ADDR="203.0.113.9", headers={"Authorization": "Bearer nope"})
    right = client.get("/metrics", REMOTE_ADDR="203.0.113.9", headers={"Authorization": "Bearer scrape-secret-123"})
    settings.METRICS_ALLOWED_NETS = ["203.0.113.0/24"]
    network = client.get("/metrics", REMOTE_ADDR="203.0.113.9")

    assert outside.status_code == 403 and wrong.status_code == 403
    assert right.status_code == 200 and network.status_code == 200 and "yokeflow_sessions" in right.text


def test_health_lists_every_check_and_ready_answers_200_without_a_login(client):
    Schedule.objects.filter(name=HEARTBEAT_NAME).update(next_run=timezone.now())

    health = client.get("/health")
    ready = client.get("/ready")

    checks = {c["name"]: c for c in health.json()["checks"]}
    assert health.status_code == 200 and health.json()["status"] == "ready"
    assert set(checks) == {"database", "workers", "broker", "git", "disk", "provider_key", "worker_orphans", "jail"}
    assert checks["database"]["ok"] and checks["workers"]["ok"] and checks["disk"]["latency_ms"] >= 0
    assert not checks["provider_key"]["ok"] and not checks["provider_key"]["required"]
    assert ready.status_code == 200 and ready.json() == {"ready": True, "failing": []}


def test_a_silent_worker_cluster_is_reported_but_the_web_stays_ready(client):
    Schedule.objects.filter(name=HEARTBEAT_NAME).update(next_run=timezone.now() - timedelta(minutes=10))

    checks = {c["name"]: c for c in client.get("/health").json()["checks"]}

    assert not checks["workers"]["ok"] and "no django-q2 cluster seen for" in checks["workers"]["message"]
    assert client.get("/ready").status_code == 200


def test_not_ready_is_503_and_doctor_exits_non_zero(client, settings):
    settings.HEALTH_DISK_MIN_MB = 10**12  # no disk has that much free

    ready = client.get("/ready")
    error = refused("doctor")

    assert ready.status_code == 503 and ready.json()["failing"] == ["disk"]
    assert "not ready: disk" in str(error)


def test_doctor_prints_a_table_and_ready(capsys):
    out = yokeflow("doctor")

    assert "database" in out and "git" in out and out.strip().endswith("ready")
    assert yokeflow("doctor", "--quiet") == ""


def test_db_wait_returns_at_once_when_the_database_answers():
    out = io.StringIO()
    call_command("yokeflow", "db-wait", "--seconds", "5", stdout=out)

    assert "database reachable" in out.getvalue()


@pytest.mark.django_db
def test_djangos_own_4xx_log_line_carries_the_requests_id(owner, api_client):
    import io
    import logging

    from apps.core.logging import structured_formatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(structured_formatter("json"))
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    try:
        response = api_client(owner).get("/api/projects/nope-404", headers={"X-Request-ID": "req-0815"})
    finally:
        logger.removeHandler(handler)

    assert response.status_code == 404
    [line] = [json.loads(text) for text in stream.getvalue().splitlines() if "Not Found" in text]
    assert line["correlation_id"] == "req-0815"
