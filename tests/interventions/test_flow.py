"""The whole intervention flow on a real run: a replay agent loops on a failing command, is paused after its second
identical failure, people are told (local webhook server, locmem mail), the slot goes to the next task, and a
person's resume continues the same conversation to a merged task."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from django.core import mail
from git import Repo

from apps.agents.models import AgentSession, Checkpoint
from apps.core.errors import ConflictError
from apps.interventions import services
from apps.interventions.models import InterventionAction, PausedSession
from apps.orchestration import lifecycle, runs
from apps.orchestration.models import Worktree
from apps.projects.models import Project, Task
from tests.interventions.fakes import FakeHTTPServer, closed_port_url

pytestmark = pytest.mark.django_db

CHECK = {"type": "tool_use", "name": "run_command", "input": {"command": "test -f unblocked.flag"}}
LOOPING_AGENT = {"description": "needs a file only a person can provide", "turns": [
    {"content": [CHECK]},
    {"content": [{"type": "text", "text": "Still missing; trying again."}, CHECK]},
    # Played only after the resume: the person created the file.
    {"content": [CHECK]},
    {"content": [{"type": "tool_use", "name": "write_file", "input": {"path": "a.txt", "content": "A"}}]},
    {"content": [{"type": "tool_use", "name": "update_task_status",
                  "input": {"status": "done", "evidence": "flag present, wrote a.txt"}}]},
    {"content": [{"type": "text", "text": "Done."}]},
]}


@pytest.fixture
def looping(replay_project, settings):
    settings.NOTIFY_BACKOFF = 0
    project = replay_project("looping", {"E": [("A", [], "a.txt", "A"), ("B", [], "b.txt", "B")]})
    script = Path(settings.REPLAY_ROOT) / "looping" / "replay" / "A.json"
    script.write_text(json.dumps(LOOPING_AGENT))
    return project


def _prefer(project: Project, webhook_url: str) -> None:
    services.preference_update(project=project, changes={
        "webhook_enabled": True, "webhook_url": webhook_url, "webhook_format": "slack",
        "email_enabled": True, "email_addresses": ["lead@example.com", "oncall@example.com"]})


def _run(project: Project) -> None:
    runs.jobs_drain(lambda: lifecycle.run_start(project=project, max_concurrency=1))


def test_a_looping_agent_is_paused_people_are_told_and_resuming_finishes_the_task(looping):
    with FakeHTTPServer() as slack:
        _prefer(looping, slack.url + "/services/T0/B0/secret")
        _run(looping)

    pause = PausedSession.objects.get(project=looping)
    session = pause.session
    assert pause.pause_type == "retry_limit" and not pause.resolved
    assert pause.retry_stats["test -f unblocked.flag"]["count"] == 2
    assert pause.blocker_info["command"] == "test -f unblocked.flag"
    assert session.status == "paused" and session.turns == 2  # the third identical try never ran
    assert Task.objects.get(project=looping, key="A").status == "paused"
    # The worker slot went to the next task at once (max_concurrency 1).
    assert Task.objects.get(project=looping, key="B").status == "done"
    # People were told: a Slack-format webhook and one email to both addresses.
    [hook] = slack.requests
    assert hook.json()["attachments"][0]["title"].startswith(f"YokeFlow: session #{session.pk} paused")
    [email] = mail.outbox
    assert sorted(email.to) == ["lead@example.com", "oncall@example.com"]
    assert email.alternatives and "text/html" in email.alternatives[0][1]

    # The person fixes the blocker in the task's worktree and resumes with notes.
    worktree = Worktree.objects.get(project=looping, task__key="A", status="active")
    (Path(worktree.path) / "unblocked.flag").write_text("ok")
    runs.jobs_drain(lambda: services.pause_resolve(pause=pause, by="alice", notes="I created unblocked.flag."))

    session.refresh_from_db()
    pause.refresh_from_db()
    assert pause.resolved and pause.resolved_by == "alice"
    assert session.status == "completed" and session.turns == 6
    resume = session.events.get(type="resume")
    assert "I created unblocked.flag." in resume.payload["text"] and resume.payload["from_turn"] == 2
    # The same conversation went on: the checkpoint holds the turns before the pause and the notes.
    messages = Checkpoint.objects.get(session=session).messages
    assert "Still missing" in json.dumps(messages[:4]) and "I created unblocked.flag." in json.dumps(messages)
    assert Task.objects.get(project=looping, key="A").status == "done"
    assert Project.objects.get(pk=looping.pk).status == "completed"
    assert Repo(looping.repo_path).commit("main").tree["a.txt"].data_stream.read() == b"A"


def test_resuming_twice_is_refused_and_audited(looping):
    _run(looping)
    pause = PausedSession.objects.get(project=looping)
    runs.jobs_drain(lambda: services.pause_resolve(pause=pause, by="alice", notes="go on"))

    with pytest.raises(ConflictError) as refused:
        services.pause_resolve(pause=pause, by="bob", notes="me too")

    assert refused.value.code == "already_resolved" and "already resolved by alice" in refused.value.message
    assert pause.actions.filter(action_type="resume_refused", action_details__by="bob").exists()
    assert PausedSession.objects.get(pk=pause.pk).resolved_by == "alice"


def test_a_notification_server_that_is_down_never_breaks_the_pause(looping):
    _prefer(looping, closed_port_url() + "/hook")
    _run(looping)

    pause = PausedSession.objects.get(project=looping)
    assert pause.session.status == "paused" and not pause.resolved
    webhook = pause.actions.get(action_type="notification", action_details__channel="webhook")
    assert webhook.action_status == "failed" and webhook.action_details["attempts"] >= 1
    assert pause.actions.get(action_type="notification", action_details__channel="email").action_status == "ok"


def test_a_turn_cap_pause_resumes_with_more_turns(looping, settings):
    settings.AGENT_MAX_TURNS = 1
    _run(looping)
    pause = PausedSession.objects.get(project=looping, session__task__key="A")
    assert pause.pause_type == "turn_cap" and pause.blocker_info == {"turns": 1, "turn_cap": 1}

    runs.jobs_drain(lambda: services.pause_resolve(pause=pause, by="alice", notes="take another turn"))

    session = AgentSession.objects.get(pk=pause.session_id)
    assert session.turns == 2  # one more turn was granted, then the cap paused it again
    again = PausedSession.objects.get(session=session, resolved=False)
    assert again.pause_type == "turn_cap" and again.blocker_info["turn_cap"] == 2
    assert InterventionAction.objects.filter(pause=pause, action_type="resumed").count() == 1


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.jail
def test_a_server_left_running_by_an_earlier_command_neither_survives_it_nor_holds_its_port(looping, settings):
    port = _free_port()
    bind = (f"python3 -c \"import socket; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, "
            f"1); s.bind(('127.0.0.1', {port})); s.listen()\"")
    leftover = (f"setsid python3 -c \"import socket, time; s = socket.socket(); s.bind(('127.0.0.1', {port})); "
                f"s.listen(); time.sleep(120)\" > /dev/null 2>&1 & sleep 0.5")
    script = {"turns": [
        {"content": [{"type": "tool_use", "name": "run_command", "input": {"command": leftover}}]},
        {"content": [{"type": "tool_use", "name": "run_command", "input": {"command": bind}}]},
        {"content": [{"type": "tool_use", "name": "run_command", "input": {"command": bind}}]},
        *LOOPING_AGENT["turns"][3:],
    ]}
    (Path(settings.REPLAY_ROOT) / "looping" / "replay" / "A.json").write_text(json.dumps(script))
    _run(looping)

    # Each command is its own jail: the `setsid` server died with its command, so both binds succeed and
    # nothing pauses (outside the jail, SANDBOX=policy, this was an address_in_use pause and a recovery).
    assert not PausedSession.objects.filter(project=looping, session__task__key="A").exists()
    assert Task.objects.get(project=looping, key="A").status == "done"
