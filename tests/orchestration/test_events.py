"""The project event feed: a run writes its events in order, the API pages through them, SSE streams them."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from apps.agents.models import AgentCost
from apps.orchestration import lifecycle, runs
from apps.projects.events import event_emit, events_after
from apps.projects.models import ProjectEvent

pytestmark = pytest.mark.django_db

TWO_EPICS = {"E1": [("A", [], "a.txt", "A"), ("B", ["A"], "b.txt", "B")], "E2": [("C", [], "c.txt", "C")]}


def _built(replay_project, slug: str = "feed"):
    project = replay_project(slug, TWO_EPICS)
    runs.jobs_drain(lambda: lifecycle.run_start(project=project, parallel=True, max_concurrency=2))
    project.refresh_from_db()
    assert project.status == "completed"
    return project


def _kinds(events, task: str) -> list[str]:
    return [e["kind"] for e in events if e["task"] == task and e["kind"].startswith("task_")]


def test_a_run_writes_batch_task_agent_cost_and_run_events_in_order(replay_project, owner, api_client):
    project = _built(replay_project)

    events = api_client(owner).get(f"/api/projects/{project.pk}/events").json()

    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    run = [e["payload"]["status"] for e in events if e["kind"] == "run_status"]  # the import planned it
    assert run == ["planned", "running", "completed"] and events[-1]["kind"] == "run_status"
    for task in "ABC":  # each task starts, then is merged, then completes
        kinds = _kinds(events, task)
        assert kinds.index("task_start") < kinds.index("task_complete") == len(kinds) - 1
        done = [e["payload"]["status"] for e in events if e["task"] == task and e["kind"] == "task_complete"]
        assert done == ["done"]
    batches = [(e["kind"], e["payload"]["batch"]) for e in events if e["kind"].startswith("batch_")]
    assert batches[0] == ("batch_start", 1) and ("batch_complete", 2) in batches
    assert batches.index(("batch_complete", 1)) < batches.index(("batch_complete", 2))
    statuses = [e["payload"]["status"] for e in events if e["kind"] == "agent_status"]
    assert statuses.count("running") == 3 and statuses.count("completed") == 3
    costs = [e for e in events if e["kind"] == "cost_update"]
    assert costs and all(float(e["payload"]["cost_usd"]) >= 0 and e["session_id"] for e in costs)
    assert len(costs) == AgentCost.objects.filter(project=project).count()


def test_the_feed_pages_with_after_and_filters_by_kind(replay_project, owner, api_client):
    project = _built(replay_project)
    client = api_client(owner)
    everything = client.get(f"/api/projects/{project.slug}/events").json()

    middle = everything[len(everything) // 2]["seq"]
    rest = client.get(f"/api/projects/{project.slug}/events?after={middle}&limit=5").json()
    starts = client.get(f"/api/projects/{project.slug}/events?kind=task_start&kind=batch_start").json()

    assert [e["seq"] for e in rest] == [e["seq"] for e in everything if e["seq"] > middle][:5]
    assert {e["kind"] for e in starts} == {"task_start", "batch_start"}
    assert client.get(f"/api/projects/{project.slug}/events?after={everything[-1]['seq']}").json() == []


def test_the_feed_refuses_bad_parameters_and_hides_other_projects(replay_project, owner, outsider, api_client,
                                                                 client):
    project = replay_project("hidden", TWO_EPICS)

    bad = api_client(owner).get(f"/api/projects/{project.pk}/events?after=-1")
    unknown_kind = api_client(owner).get(f"/api/projects/{project.pk}/events?kind=everything")

    assert bad.status_code == 422 and "after" in bad.text
    assert unknown_kind.status_code == 422 and "kind" in unknown_kind.text
    assert api_client(outsider).get(f"/api/projects/{project.pk}/events").status_code == 404
    assert client.get(f"/api/projects/{project.pk}/events").status_code == 401


def test_server_sent_events_stream_the_same_rows_and_end_with_the_run(replay_project, owner, api_client):
    project = _built(replay_project, "sse")
    client = api_client(owner)
    feed = client.get(f"/api/projects/{project.pk}/events").json()

    response = client.get(f"/api/projects/{project.pk}/events/stream", headers={"Last-Event-ID": str(feed[2]["seq"])})
    frames = [frame for frame in b"".join(response.streaming_content).decode().split("\n\n") if frame]

    assert response["Content-Type"] == "text/event-stream"
    data = [json.loads(f.split("data: ", 1)[1]) for f in frames if f.startswith("id: ")]
    assert [d["seq"] for d in data] == [e["seq"] for e in feed[3:]]
    assert frames[-1].startswith("event: end") and '"status": "completed"' in frames[-1]
    first = next(f for f in frames if f.startswith("id: "))
    assert first.splitlines()[1] == f"event: {feed[3]['kind']}"


@pytest.mark.postgres
def test_on_postgresql_the_feed_holds_back_events_that_may_still_have_earlier_neighbours(planned_project, settings):
    """Ids are taken at insert and become visible at commit: the newest second waits, the rest is served."""
    settings.EVENTS_SETTLE_SECONDS = 60
    old = event_emit(project_id=planned_project.pk, kind="run_status", status="running")
    ProjectEvent.objects.filter(pk=old.pk).update(created=old.created.replace(year=old.created.year - 1))
    event_emit(project_id=planned_project.pk, kind="run_status", status="paused")

    assert connection.vendor == "postgresql"
    assert [e.pk for e in events_after(project=planned_project)] == [old.pk]
