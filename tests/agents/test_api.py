"""Sessions, transcripts, models, and starting work through the JSON API, with access checks."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.agents.coding import coding_session_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def finished_session(claude, coding_session):
    claude.tool_use("write_file", {"path": "hello.txt", "content": "hi"})
    claude.tool_use("update_task_status", {"status": "done", "evidence": "ok"})
    claude.text("Done.")
    coding_session_run(session=coding_session)
    coding_session.refresh_from_db()
    return coding_session


def test_sessions_and_their_events_are_listed_in_order(api_client, owner, finished_session):
    client = api_client(owner)
    project = finished_session.project
    listing = client.get(f"/api/projects/{project.slug}/sessions").json()
    assert listing["count"] == 1 and listing["items"][0]["task_key"] == "T1"
    detail = client.get(f"/api/sessions/{finished_session.pk}").json()
    assert detail["status"] == "completed" and detail["checkpoint_turn"] == 3 and detail["cost_usd"] != "0"
    events = client.get(f"/api/sessions/{finished_session.pk}/events?after=10&limit=2").json()
    assert [e["seq"] for e in events] == [11, 12]


def test_other_peoples_sessions_are_not_found_and_viewers_cannot_act(api_client, outsider, viewer,
                                                                     finished_session):
    assert api_client(outsider).get(f"/api/sessions/{finished_session.pk}").status_code == 404
    assert api_client(outsider).get(f"/api/sessions/{finished_session.pk}/events").status_code == 404
    assert api_client(viewer).get(f"/api/sessions/{finished_session.pk}").status_code == 200
    assert api_client(viewer).post(f"/api/sessions/{finished_session.pk}/cancel").status_code == 403
    assert Client().get(f"/api/sessions/{finished_session.pk}").status_code == 401


def test_acting_on_a_finished_session_is_a_clear_conflict(api_client, owner, finished_session):
    client = api_client(owner)
    cancel = client.post(f"/api/sessions/{finished_session.pk}/cancel")
    assert cancel.status_code == 409 and "nothing to cancel" in cancel.json()["message"]
    resume = client.post(f"/api/sessions/{finished_session.pk}/continue", {"notes": "go"},
                         content_type="application/json")
    assert resume.status_code == 409 and resume.json()["error"] == "session_finished"


def test_bad_ids_and_bodies_are_422_or_404_never_500(api_client, owner, finished_session):
    client = api_client(owner)
    assert client.get("/api/sessions/abc").status_code == 404
    assert client.get(f"/api/sessions/{finished_session.pk}/events?after=-1").status_code == 422
    bad = client.post(f"/api/sessions/{finished_session.pk}/continue", {"force": "maybe"},
                      content_type="application/json")
    assert bad.status_code == 422


def test_runs_are_started_for_the_workers_once(api_client, owner, viewer, planned_project):
    client = api_client(owner)
    assert api_client(viewer).post(f"/api/projects/{planned_project.slug}/run").status_code == 403
    run = client.post(f"/api/projects/{planned_project.slug}/run")
    assert run.status_code == 202 and run.json()["status"] == "running"
    assert run.json()["forecast"].startswith(f"forecast for {planned_project.tasks.count()} open task(s)")
    again = client.post(f"/api/projects/{planned_project.slug}/run")
    assert again.status_code == 409 and again.json()["error"] == "already_running"


def test_a_spec_is_planned_by_a_queued_session(api_client, owner):
    from apps.projects.services import project_create

    project = project_create(owner=owner, name="Shop", spec="Sell things.")
    response = api_client(owner).post(f"/api/projects/{project.slug}/planning")
    assert response.status_code == 202
    body = response.json()
    assert body["kind"] == "planning" and body["status"] == "queued"
    assert "offline replay model" in body["model_label"]
    again = api_client(owner).post(f"/api/projects/{project.slug}/planning")
    assert again.status_code == 409 and again.json()["error"] == "planning_in_progress"


def test_models_lists_tiers_prices_and_the_provider(api_client, owner):
    body = api_client(owner).get("/api/models").json()
    assert body["provider"] == "replay" and "offline replay model" in body["notice"]
    assert body["tiers"] == {"haiku": "claude-haiku-5-5", "sonnet": "claude-sonnet-5-5", "opus": "claude-opus-5-5"}
    assert body["deprecated"] == {}
    assert {p["model"] for p in body["prices"]} >= {"claude-opus-5-5", "claude-haiku-4-5"}


def test_pausing_a_session_over_the_api_asks_it_to_pause_before_its_next_call(coding_session, owner, viewer,
                                                                              api_client):
    url = f"/api/sessions/{coding_session.pk}/pause"

    refused = api_client(viewer).post(url, data={"reason": "x"}, content_type="application/json")
    too_long = api_client(owner).post(url, data={"reason": "x" * 201}, content_type="application/json")
    paused = api_client(owner).post(url, data={"reason": "check the plan"}, content_type="application/json")

    assert refused.status_code == 403 and too_long.status_code == 422 and "reason" in too_long.text
    assert paused.status_code == 200 and paused.json()["pause_requested"] == "olivia: check the plan"
    coding_session.refresh_from_db()
    assert coding_session.pause_requested == "olivia: check the plan"


def test_a_finished_session_cannot_be_paused(coding_session, owner, api_client):
    from apps.agents.services import session_request_cancel

    session_request_cancel(session=coding_session)

    response = api_client(owner).post(f"/api/sessions/{coding_session.pk}/pause", data={},
                                      content_type="application/json")

    assert response.status_code == 409 and response.json()["error"] == "not_pausable"
