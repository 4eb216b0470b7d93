"""The interventions page lists paused sessions a user may see and resumes them; the admin does the same for staff
and never shows notification secrets."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission

from apps.agents.models import AgentSession
from apps.agents.services import session_create, session_transition
from apps.interventions.models import PausedSession
from apps.interventions.services import pause_open, pause_resolve, preference_update
from apps.projects.services import project_create

pytestmark = pytest.mark.django_db


PAGE = "/interventions/"
HTMX = {"HX-Request": "true"}


def resume_url(pause_id: int) -> str:
    return f"/interventions/{pause_id}/resume"


@pytest.fixture
def other_pause(owner) -> PausedSession:
    """A pause in a second project of the same owner: a planning session that asked for help."""
    other = project_create(owner=owner, name="Billing", spec="Invoices.")
    session = session_create(project=other, kind="planning", model="claude-sonnet-5-5", provider="anthropic")
    session = session_transition(session=session, status=AgentSession.Status.RUNNING, lease_owner="test")
    session = session_transition(session=session, status=AgentSession.Status.PAUSED, owner="test")
    return pause_open(session=session, pause_type="help_requested", reason="which currency?")


@pytest.fixture
def admin_user(staff):
    """Staff with the interventions models' rights (a staff user has none by default)."""
    staff.user_permissions.add(*Permission.objects.filter(content_type__app_label="interventions"))
    return staff


def test_the_page_needs_a_login(client):
    response = client.get(PAGE)

    assert response.status_code == 302 and response["Location"].startswith("/login/?next=")


def test_the_active_tab_shows_type_blocker_retries_and_a_resume_form(client, owner, pause):
    client.force_login(owner)

    page = client.get(PAGE).text

    assert "same failing command repeated" in page and "pause-retry_limit" in page
    assert "<code>pytest -q</code>" in page and "E   AssertionError: 1 != 2" in page
    assert "<td><code>pytest -q</code></td><td>2</td><td>exit code 1</td>" in page
    assert f"session #{pause.session_id}" in page and "Todo service" in page and "<code>T1</code>" in page
    assert resume_url(pause.pk) in page and 'value="olivia"' in page and "csrfmiddlewaretoken" in page
    assert "Interventions, 1 waiting" in page


def test_the_project_filter_narrows_the_list(client, owner, pause, other_pause):
    client.force_login(owner)
    assert "which currency?" in client.get(PAGE).text

    page = client.get(PAGE, {"project": "todo-service"}).text

    assert "pytest -q" in page and "which currency?" not in page


def test_an_unknown_project_in_the_filter_shows_an_empty_message(client, owner, pause):
    client.force_login(owner)

    response = client.get(PAGE, {"project": "no-such-project"})

    assert response.status_code == 200 and "No project “no-such-project”" in response.text
    assert "pytest -q" not in response.text


def test_an_outsider_does_not_see_another_projects_pause(client, outsider, pause):
    client.force_login(outsider)

    page = client.get(PAGE).text
    filtered = client.get(PAGE, {"project": "todo-service"}).text

    assert "pytest -q" not in page and "No session is waiting" in page
    assert "pytest -q" not in filtered
    assert client.post(resume_url(pause.pk), {"resolved_by": "oscar"}).status_code == 404


def test_an_htmx_poll_gets_only_the_list_and_keeps_polling_on_the_active_tab(client, owner, pause):
    client.force_login(owner)

    response = client.get(PAGE, headers=HTMX)

    assert response.status_code == 200
    assert 'id="pauses"' in response.text and "pytest -q" in response.text
    assert "<html" not in response.text and 'id="project-filter"' not in response.text


def test_the_full_page_polls_the_list_every_5_seconds(client, owner, pause):
    client.force_login(owner)

    page = client.get(PAGE, {"project": "todo-service"}).text

    assert 'hx-get="/interventions/?project=todo-service"' in page and "every 5s" in page
    assert 'hx-select="#pauses"' in page


def test_resuming_resolves_the_pause_and_queues_the_session(client, owner, pause):
    client.force_login(owner)

    response = client.post(resume_url(pause.pk) + "?tab=active",
                           {"resolved_by": "olivia", "notes": "I installed the module."}, follow=True)

    pause.refresh_from_db()
    assert pause.resolved and pause.resolved_by == "olivia" and pause.resolution_notes == "I installed the module."
    assert pause.session.status == AgentSession.Status.QUEUED
    assert response.redirect_chain == [("/interventions/?tab=active", 302)]
    assert f"Session #{pause.session_id} continues" in response.text and "No session is waiting" in response.text


def test_resuming_by_htmx_rerenders_the_list_with_the_notice(client, owner, pause):
    client.force_login(owner)

    response = client.post(resume_url(pause.pk), {"resolved_by": "olivia", "notes": ""}, headers=HTMX)

    assert response.status_code == 200 and "<html" not in response.text
    assert f"Session #{pause.session_id} continues" in response.text


def test_resuming_twice_is_a_conflict_shown_on_the_page(client, owner, pause):
    client.force_login(owner)
    client.post(resume_url(pause.pk), {"resolved_by": "olivia", "notes": "go on"})

    response = client.post(resume_url(pause.pk), {"resolved_by": "olivia", "notes": "again"})

    assert response.status_code == 409
    assert "already resolved by olivia" in response.text and 'role="alert"' in response.text
    assert PausedSession.objects.get(pk=pause.pk).resolution_notes == "go on"


def test_a_viewer_sees_no_resume_form_and_cannot_resume(client, viewer, pause):
    client.force_login(viewer)

    page = client.get(PAGE).text
    response = client.post(resume_url(pause.pk), {"resolved_by": "vera", "notes": "let me"})

    assert "pytest -q" in page and resume_url(pause.pk) not in page and "Resume session" not in page
    assert response.status_code == 403 and "you may not run or change its work" in response.text
    assert not PausedSession.objects.get(pk=pause.pk).resolved


def test_an_operator_may_resume(client, operator, pause):
    client.force_login(operator)
    assert resume_url(pause.pk) in client.get(PAGE).text

    assert client.post(resume_url(pause.pk), {"resolved_by": "otto"}).status_code == 302

    assert PausedSession.objects.get(pk=pause.pk).resolved_by == "otto"


def test_an_empty_resolved_by_is_refused_and_the_notes_are_kept(client, owner, pause):
    client.force_login(owner)

    response = client.post(resume_url(pause.pk), {"resolved_by": "  ", "notes": "my long explanation"})

    assert response.status_code == 422 and "resolved_by: say who resolves the pause" in response.text
    assert "my long explanation</textarea>" in response.text
    # The dialog comes back open, its error inside it (dialogs.js reopens it as a modal one).
    assert f'aria-describedby="resume-{pause.pk}-error" open>' in response.text
    assert f'<p class="error" id="resume-{pause.pk}-error">resolved_by: say who resolves' in response.text
    assert not PausedSession.objects.get(pk=pause.pk).resolved


def test_the_history_tab_shows_resolved_pauses_and_stops_polling(client, owner, pause, other_pause):
    pause_resolve(pause=pause, by="olivia", notes="fixed the test data")
    client.force_login(owner)

    page = client.get(PAGE, {"tab": "history"}).text
    poll = client.get(PAGE, {"tab": "history"}, headers=HTMX)

    assert "pytest -q" in page and "fixed the test data" in page and "Resolved by" in page
    assert "which currency?" not in page and resume_url(pause.pk) not in page
    assert poll.status_code == 286 and "fixed the test data" in poll.text


def test_the_admin_changelist_lists_pauses_with_filters(client, admin_user, pause):
    client.force_login(admin_user)

    response = client.get("/admin/interventions/pausedsession/", {"q": "pytest"})

    assert response.status_code == 200
    assert "By pause type" in response.text and "By can auto resume" in response.text
    assert "pytest -q" in response.text and "Resume selected pauses" in response.text
    assert client.get(f"/admin/interventions/pausedsession/{pause.pk}/change/").status_code == 200
    assert client.get("/admin/interventions/interventionaction/").status_code == 200
    assert client.get("/admin/interventions/provideraccount/").status_code == 200


def test_the_admin_resume_action_resolves_then_reports_a_refusal(client, admin_user, pause):
    client.force_login(admin_user)
    action = {"action": "resume", "_selected_action": [pause.pk]}

    first = client.post("/admin/interventions/pausedsession/", action, follow=True)
    pause.refresh_from_db()
    second = client.post("/admin/interventions/pausedsession/", action, follow=True)

    assert pause.resolved and pause.resolved_by == "stella" and pause.resolution_notes == "resumed from the admin"
    assert pause.session.status == AgentSession.Status.QUEUED
    assert f"Pause #{pause.pk}: session #{pause.session_id} continues" in first.text
    assert f"Pause #{pause.pk} not resumed" in second.text and "already resolved by stella" in second.text


def test_the_preference_admin_never_renders_the_secrets(client, admin_user, project):
    webhook = "https://hooks.slack.com/services/T000/B000/secretpath1234"
    pref = preference_update(project=project, changes={
        "webhook_enabled": True, "webhook_url": webhook, "twilio_account_sid": "AC-sid-value-5678",
        "twilio_auth_token": "tw-token-very-secret-9999"})
    client.force_login(admin_user)

    change = client.get(f"/admin/interventions/notificationpreference/{pref.pk}/change/").text
    listing = client.get("/admin/interventions/notificationpreference/").text

    for page in (change, listing):
        assert webhook not in page and "secretpath" not in page
        assert "tw-token-very-secret-9999" not in page and "AC-sid-value-5678" not in page
    assert "https://hooks.slack.com/…1234" in change


def test_saving_preferences_in_the_admin_with_blank_secrets_keeps_them(client, admin_user, project):
    webhook = "https://hooks.slack.com/services/T000/B000/secretpath1234"
    pref = preference_update(project=project, changes={"webhook_enabled": True, "webhook_url": webhook,
                                                       "twilio_auth_token": "tw-token-very-secret-9999"})
    client.force_login(admin_user)
    form = client.get(f"/admin/interventions/notificationpreference/{pref.pk}/change/").context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and not isinstance(value, bool)}
    data.update({name: "on" for name, value in form.initial.items() if value is True})
    data.update({"webhook_url": "", "twilio_auth_token": "", "min_notification_interval": 60,
                 "email_addresses": "[]", "sms_numbers": "[]"})

    response = client.post(f"/admin/interventions/notificationpreference/{pref.pk}/change/", data)

    assert response.status_code == 302
    pref.refresh_from_db()
    assert pref.webhook_url == webhook and pref.twilio_auth_token == "tw-token-very-secret-9999"
    assert pref.min_notification_interval == 60


def budget_pause_open(session: AgentSession) -> PausedSession:
    """Pause a coding `session` by the budget guard, its project's budget at $1.00 and a raise of $2 suggested.

    A function rather than only a fixture: the browser tests (tests/browser) build the same pause."""
    project = session.project
    project.budget_usd = 1
    project.save()
    session = session_transition(session=session, status=AgentSession.Status.RUNNING, lease_owner="test")
    session = session_transition(session=session, status=AgentSession.Status.PAUSED, stop_reason="budget",
                                 owner="test")
    return pause_open(session=session, pause_type="budget", reason="approve more budget to go on",
                      blocker_info={"budget_usd": "1.00", "spent_usd": "0", "next_call_worst_usd": "1.20",
                                    "suggested_usd": "2"})


@pytest.fixture
def budget_pause(coding_session) -> PausedSession:
    """A coding session paused by the budget guard (see budget_pause_open)."""
    return budget_pause_open(coding_session)


def test_a_budget_pause_offers_approve_and_a_bad_amount_keeps_everything(client, owner, budget_pause):
    client.force_login(owner)
    page = client.get(PAGE).text
    assert "Approve more budget for Todo service" in page and 'value="2"' in page

    refused = client.post(f"/projects/{budget_pause.project.slug}/budget/approve",
                          {"amount": "-3", "pause_id": budget_pause.pk})

    assert refused.status_code == 422 and "between 0.01 and 100000" in refused.text
    budget_pause.project.refresh_from_db()
    assert budget_pause.project.budget_usd == 1


def test_approving_from_the_page_raises_the_budget_and_resumes(client, owner, budget_pause):
    from apps.core.jobs import jobs_drain

    client.force_login(owner)
    responses = []
    jobs_drain(lambda: responses.append(client.post(f"/projects/{budget_pause.project.slug}/budget/approve",
                                                    {"amount": "2"}, headers=HTMX)))

    assert responses[0].status_code == 200 and "raised to $3.00" in responses[0].text
    budget_pause.refresh_from_db()
    assert budget_pause.resolved and budget_pause.resolved_by == owner.get_username()
    budget_pause.project.refresh_from_db()
    assert budget_pause.project.budget_usd == 3


def test_a_viewer_cannot_approve_budget(client, viewer, budget_pause):
    client.force_login(viewer)

    assert "Approve more budget" not in client.get(PAGE).text
    response = client.post(f"/projects/{budget_pause.project.slug}/budget/approve", {"amount": "2"})

    assert response.status_code == 403
    budget_pause.project.refresh_from_db()
    assert budget_pause.project.budget_usd == 1


def test_the_admin_approves_budget_with_the_amount_field_and_refuses_without_it(client, admin_user, budget_pause):
    client.force_login(admin_user)
    action = {"action": "approve_budget", "_selected_action": [budget_pause.pk]}

    missing = client.post("/admin/interventions/pausedsession/", {**action, "amount": ""}, follow=True)
    budget_pause.project.refresh_from_db()
    assert "ive the dollars to approve" in missing.text and budget_pause.project.budget_usd == 1

    done = client.post("/admin/interventions/pausedsession/", {**action, "amount": "2.50"}, follow=True)

    budget_pause.refresh_from_db()
    budget_pause.project.refresh_from_db()
    assert budget_pause.project.budget_usd == Decimal("3.50") and budget_pause.resolved
    assert "budget raised to $3.50; resumed 1 session(s), 0 still short" in done.text
