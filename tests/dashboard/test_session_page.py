"""One session's page: the transcript tail (text, tool calls collapsed, errors marked), figures, checkpoint and
pause, the live tail (new rows out of band, 286 once finished), and the pause and kill buttons."""

from __future__ import annotations

import re

import pytest

from apps.agents.models import AgentSession
from apps.agents.services import events_append, session_create, session_request_pause
from apps.interventions.models import PausedSession
from apps.interventions.services import pause_resolve
from apps.orchestration import lifecycle, runs
from tests.orchestration.test_events import TWO_EPICS

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}


@pytest.fixture
def built(replay_project):
    project = replay_project("sessions", TWO_EPICS)
    runs.jobs_drain(lambda: lifecycle.run_start(project=project))
    return project


def test_the_session_page_shows_the_transcript_with_tool_calls_collapsed(client, built, owner):
    session = built.sessions.get(task__key="A")
    client.force_login(owner)

    page = client.get(f"/sessions/{session.pk}/").text

    assert "Session #" in page and "<code>A</code>" in page and "Completed" in page
    assert re.search(r'<li class="t-tool_use" id="event-\d+">\s*<details><summary>.*?write_file\(', page, re.S)
    assert re.search(r'<li class="t-tool_result" id="event-\d+">\s*<details>', page)
    assert "Checkpoint</dt><dd>turn" in page and "Tokens</dt>" in page and "Cost</dt><dd>$" in page
    assert "Kill session" not in page  # finished: nothing to stop
    assert 'id="tail-poller"' in page and "hx-trigger" not in page.split('id="tail-poller"')[1][:80]


def test_errors_are_highlighted_and_the_live_tail_appends_new_rows_out_of_band(client, planned_project, owner):
    task = planned_project.tasks.get(key="T1")
    session = session_create(project=planned_project, kind="coding", model="claude-sonnet-4-5", provider="replay",
                             task=task)
    events_append(session=session, events=[("text", {"text": "Let me look."})])
    client.force_login(owner)
    page = client.get(f"/sessions/{session.pk}/").text
    assert "Let me look." in page and "?after=1" in page and "Kill session" in page

    events_append(session=session, events=[
        ("tool_result", {"name": "run_command", "is_error": True, "content": "exit 1: boom"}),
        ("llm_error", {"code": "overloaded", "message": "try later"})])
    tail = client.get(f"/sessions/{session.pk}/?after=1", headers=HTMX)

    assert tail.status_code == 200 and "<html" not in tail.text
    assert 'hx-swap-oob="beforeend:#transcript"' in tail.text and "Let me look." not in tail.text
    assert tail.text.count("is-error") == 2 and "boom" in tail.text and "overloaded: try later" in tail.text
    assert "?after=3" in tail.text
    assert 'id="session-figures" aria-labelledby="figures-title" hx-swap-oob="true"' in tail.text


def test_the_tail_stops_polling_when_the_session_has_finished(client, built, owner):
    session = built.sessions.get(task__key="C")
    client.force_login(owner)

    tail = client.get(f"/sessions/{session.pk}/?after={session.last_seq}", headers=HTMX)

    assert tail.status_code == 286 and "hx-trigger" not in tail.text


def test_pause_asks_a_running_session_to_pause_and_kill_cancels_a_queued_one(client, replay_project, owner):
    project = replay_project("acts", TWO_EPICS)
    lifecycle.run_start(project=project, max_concurrency=2)  # sessions queued; their jobs are not run here
    first, second = project.sessions.order_by("pk")
    client.force_login(owner)

    paused = client.post(f"/sessions/{first.pk}/pause", {"reason": "check the schema",
                                                          "next": f"/projects/{project.slug}/"})
    killed = client.post(f"/sessions/{second.pk}/kill", follow=True)

    assert paused.status_code == 302 and paused["Location"] == f"/projects/{project.slug}/"
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.pause_requested == "olivia: check the schema" and second.status == "cancelled"
    assert "is being stopped" in killed.text
    again = client.post(f"/sessions/{second.pk}/pause", follow=True)
    assert "only a queued or running session can be paused" in again.text


def test_an_offsite_next_is_ignored(client, replay_project, owner):
    project = replay_project("offsite", TWO_EPICS)
    lifecycle.run_start(project=project)
    session = project.sessions.first()
    client.force_login(owner)

    response = client.post(f"/sessions/{session.pk}/pause", {"next": "https://evil.example/"})

    assert response["Location"] == f"/sessions/{session.pk}/"


def test_a_viewer_cannot_pause_or_kill(client, built, viewer, replay_project):
    session = built.sessions.get(task__key="A")
    built.memberships.create(user=viewer, role="viewer")
    client.force_login(viewer)

    page = client.get(f"/sessions/{session.pk}/").text
    refused = client.post(f"/sessions/{session.pk}/kill", follow=True)

    assert "Kill session" not in page and "you may not run or change its work" in refused.text
    session.refresh_from_db()
    assert session.status == "completed"


def test_an_unknown_or_hidden_session_is_not_found(client, built, outsider):
    client.force_login(outsider)

    assert client.get(f"/sessions/{built.sessions.first().pk}/").status_code == 404
    assert client.get("/sessions/999999/").status_code == 404


def test_a_requested_pause_stops_the_session_before_its_next_call_and_resuming_finishes_it(replay_project):
    project = replay_project("manual", {"E1": [("A", [], "a.txt", "A")]})

    def start() -> None:
        lifecycle.run_start(project=project)
        session_request_pause(session=project.sessions.get(), by="olivia", reason="look at the plan")

    runs.jobs_drain(start)
    session = project.sessions.get()
    pause = PausedSession.objects.get(session=session)
    assert session.status == "paused" and pause.pause_type == "manual"
    assert pause.pause_reason == "paused by olivia: look at the plan" and session.turns == 0
    assert AgentSession.objects.get(pk=session.pk).pause_requested == ""  # taken: continuing does not pause again

    runs.jobs_drain(lambda: pause_resolve(pause=pause, by="olivia", notes="plan is fine"))

    project.refresh_from_db()
    assert project.status == "completed" and project.sessions.get().status == "completed"


def test_the_pause_command_pauses_a_session_and_refuses_a_finished_one(built, replay_project):
    from tests.projects.test_cli import refused, yokeflow

    project = replay_project("cli-pause", TWO_EPICS)
    lifecycle.run_start(project=project)
    queued = project.sessions.first()
    done = built.sessions.get(task__key="A")

    out = yokeflow("pause", str(queued.pk), "--by", "olivia", "--reason", "lunch")
    error = refused("pause", str(done.pk), "--by", "olivia")

    assert f"session #{queued.pk} pauses before its next model call (olivia: lunch)" in out
    assert "only a queued or running session can be paused" in str(error)
