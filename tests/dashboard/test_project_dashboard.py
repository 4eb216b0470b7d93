"""The project dashboard: swimlanes and progress, live polling (204 while nothing changed, 286 when the run is
over), the run's actions, and a bounded number of queries however large the plan."""

from __future__ import annotations

import re

import pytest

from apps.interventions.models import PausedSession
from apps.orchestration import lifecycle, runs
from apps.projects.models import ProjectEvent
from apps.projects.plan import plan_import
from apps.projects.services import project_create, project_status_move, task_transition
from tests.factories import wide_plan
from tests.orchestration.test_events import TWO_EPICS

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}


def _card(page: str, key: str) -> str:
    match = re.search(rf'<article class="task-card[^"]*" id="task-{key}" data-status="(\w+)"', page)
    assert match, f"no card for {key}"
    return match.group(1)


def test_the_dashboard_has_a_lane_per_epic_and_a_card_per_task_with_its_batch(client, planned_project, owner):
    client.force_login(owner)

    page = client.get("/projects/todo-service/").text

    lanes = re.findall(r'<section class="lane" aria-label="Epic (E\d+)', page)
    assert lanes == list(planned_project.epics.order_by("position").values_list("key", flat=True))
    assert len(re.findall(r'<article class="task-card', page)) == planned_project.tasks.count()
    assert _card(page, "T1") == "ready" and _card(page, "T2") == "pending"
    assert re.search(r'id="task-T2" data-status="pending" data-deps="T1"', page)  # the arrow's ends
    assert re.search(r'id="task-T1".*?B1</span>', page, re.S)
    assert re.search(r'id="task-T2".*?B2</span>', page, re.S)
    assert f"0</strong> of {planned_project.tasks.count()} tasks done" in page
    assert "after the first task of this project finishes" in page


def test_a_live_board_answers_204_until_an_event_and_286_once_the_run_is_over(client, planned_project, owner):
    client.force_login(owner)
    project_status_move(project=planned_project, to="running")
    page = client.get("/projects/todo-service/").text
    seq = re.search(r'data-last-seq="(\d+)"', page).group(1)
    assert f"part=swimlanes&amp;after={seq}" in page and 'hx-trigger="every 2.0s"' in page
    assert f"part=progress&amp;after={seq}" in page

    unchanged = client.get(f"/projects/todo-service/?part=swimlanes&after={seq}", headers=HTMX)
    progress_unchanged = client.get(f"/projects/todo-service/?part=progress&after={seq}", headers=HTMX)
    task_transition(task=planned_project.tasks.get(key="T1"), to="running")
    changed = client.get(f"/projects/todo-service/?part=swimlanes&after={seq}", headers=HTMX)
    progress_changed = client.get(f"/projects/todo-service/?part=progress&after={seq}", headers=HTMX)
    project_status_move(project=planned_project, to="paused")
    over = client.get(f"/projects/todo-service/?part=swimlanes&after={seq}", headers=HTMX)
    progress_over = client.get("/projects/todo-service/?part=progress", headers=HTMX)

    assert unchanged.status_code == 204 and unchanged.content == b""
    assert progress_unchanged.status_code == 204 and progress_changed.status_code == 200
    assert "running 1" in progress_changed.text and f"after={int(seq) + 1}" in progress_changed.text
    assert changed.status_code == 200 and _card(changed.text, "T1") == "running"
    assert "hx-trigger" in changed.text and "<html" not in changed.text
    assert over.status_code == 286 and "hx-trigger" not in over.text
    assert progress_over.status_code == 286 and "run paused" in progress_over.text


def test_the_progress_panel_shows_agents_cost_budget_eta_and_recent_events(client, replay_project, owner):
    project = replay_project("progress", TWO_EPICS, budget_usd="5.00")
    runs.jobs_drain(lambda: lifecycle.run_start(project=project, parallel=True, max_concurrency=2))
    client.force_login(owner)

    page = client.get("/projects/progress/?part=progress", headers=HTMX).text

    assert "3</strong> of 3 tasks done (100 %)" in page
    assert re.search(r"Cost so far <strong>\$\d+\.\d\d</strong> of \$5\.00 \(\d+ %\)", page)
    assert "Nothing left to do." in page and "Batch 1" in page and "Batch 2" in page
    assert "No agent is working right now." in page
    assert "run completed" in page and "batch 2 complete" in page  # the newest events, from the event rows
    assert ProjectEvent.objects.filter(project=project, kind="run_status").exists()


def test_the_eta_comes_from_the_projects_own_finished_tasks(client, replay_project, owner):
    project = replay_project("eta", TWO_EPICS, max_concurrency=2)
    runs.jobs_drain(lambda: lifecycle.run_start(project=project, parallel=True))
    project.tasks.filter(key="C").update(status="ready", completed_at=None)
    client.force_login(owner)

    page = client.get("/projects/eta/?part=progress", headers=HTMX).text

    assert re.search(r"median task \d+ s \(from 2 done\) × 1 left ÷ 2 agents", page)


def test_an_operator_starts_and_cancels_a_run_and_retries_a_failed_task(client, replay_project, owner):
    project = replay_project("acts", TWO_EPICS)
    client.force_login(owner)

    started = client.post("/projects/acts/run/start", follow=True)
    again = client.post("/projects/acts/run/start", follow=True)
    cancelled = client.post("/projects/acts/run/cancel", follow=True)

    assert "Run started" in started.text and "already running" in again.text
    assert "Run cancelled" in cancelled.text
    project.refresh_from_db()
    assert project.status == "paused"
    task = project.tasks.get(key="C")
    task.refresh_from_db()
    if task.status != "failed":  # make a failed task to retry (its session was cancelled with the run)
        project.tasks.filter(key="C").update(status="failed", last_error="boom")
    page = client.get("/projects/acts/").text
    assert 'action="/projects/acts/tasks/C/retry"' in page and "boom" in page

    retried = client.post("/projects/acts/tasks/C/retry", follow=True)

    assert "Task C is queued again" in retried.text
    assert project.tasks.get(key="C").status in ("ready", "running")


def test_a_viewer_sees_no_buttons_and_cannot_start_a_run(client, planned_project, viewer):
    client.force_login(viewer)

    page = client.get("/projects/todo-service/").text
    refused = client.post("/projects/todo-service/run/start", follow=True)

    assert "Start run" not in page and "read only" in page
    assert "you may not run or change its work" in refused.text
    planned_project.refresh_from_db()
    assert planned_project.status == "planned" and not planned_project.sessions.exists()


def test_a_refused_action_is_a_message_not_an_error_page(client, planned_project, owner):
    client.force_login(owner)

    response = client.post("/projects/todo-service/tasks/T1/retry", follow=True)
    missing = client.post("/projects/todo-service/tasks/T99/retry", follow=True)

    assert response.status_code == 200 and "only failed, paused or cancelled tasks are retried" in response.text
    assert missing.status_code == 200 and "T99 not found" in missing.text


def test_the_budget_form_approves_from_the_dashboard(client, planned_project, owner):
    planned_project.budget_usd = 1
    planned_project.save()
    client.force_login(owner)

    response = client.post("/projects/todo-service/budget/approve",
                           {"amount": "2.50", "next": "/projects/todo-service/"})

    planned_project.refresh_from_db()
    assert response.status_code == 302 and response["Location"] == "/projects/todo-service/"
    assert str(planned_project.budget_usd) == "3.50"
    assert not PausedSession.objects.exists()


def test_the_swimlane_partial_of_a_2000_task_project_takes_at_most_12_queries(
        client, owner, django_assert_max_num_queries):
    project = project_create(owner=owner, name="Big", slug="big", spec="many tasks")
    plan_import(project=project, data=wide_plan(2000))
    project_status_move(project=project, to="running")
    client.force_login(owner)
    client.get("/projects/big/")  # the session and user are loaded once per request anyway

    with django_assert_max_num_queries(12):
        response = client.get("/projects/big/?part=swimlanes&after=0", headers=HTMX)

    assert response.status_code == 200
    assert response.text.count('<article class="task-card') == 2000
    with django_assert_max_num_queries(12):
        assert client.get("/projects/big/?part=progress", headers=HTMX).status_code == 200


def test_a_refused_approval_from_the_dashboard_comes_back_with_the_reason(client, planned_project, owner):
    planned_project.budget_usd = 1
    planned_project.save()
    client.force_login(owner)

    response = client.post("/projects/todo-service/budget/approve",
                           {"amount": "abc", "next": "/projects/todo-service/"}, follow=True)

    planned_project.refresh_from_db()
    assert response.redirect_chain[-1][0] == "/projects/todo-service/" and "amount" in response.text
    assert str(planned_project.budget_usd) == "1.00"
