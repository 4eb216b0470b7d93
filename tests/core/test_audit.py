"""The audit log records who did what, when and from where, through the real services and endpoints; it never
stores a secret, readers see only what they may, and its rows are never changed or deleted one by one."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from apps.agents.models import AgentSession
from apps.agents.services import session_create, session_transition
from apps.core.audit import audit_list, audit_record
from apps.core.context import WorkContext, started
from apps.core.models import AuditAction, AuditEvent, AuditImmutableError
from apps.interventions.services import budget_approve, pause_open, pause_resolve
from apps.projects.services import project_create
from tests.projects.test_cli import refused, yokeflow

pytestmark = pytest.mark.django_db

WEBHOOK = "https://hooks.slack.com/services/T000/B000/auditsecretvalue77"
TWILIO_TOKEN = "twilio-auth-token-audit-secret-11"


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("pk"))


@pytest.fixture
def queued_session(planned_project):
    def make() -> AgentSession:
        task = planned_project.tasks.order_by("pk").first()
        return session_create(project=planned_project, kind="coding", model="claude-sonnet-4-5", provider="replay",
                              task=task)

    return make


def test_creating_and_using_a_token_is_recorded_once_per_resolution_window(api_client, owner, project):
    client = api_client(owner)

    first = client.get(f"/api/projects/{project.slug}")
    second = client.get(f"/api/projects/{project.slug}")

    assert first.status_code == 200 and second.status_code == 200
    [created] = events(AuditAction.TOKEN_CREATED)
    [used] = events(AuditAction.TOKEN_USED)
    assert created.actor == used.actor == "olivia"
    assert created.target == used.target and created.target.startswith("yf_")
    assert used.origin and used.correlation_id


def test_a_budget_approval_over_the_api_records_who_approved_how_much(api_client, owner, project):
    project.budget_usd = Decimal("5")
    project.save()

    response = api_client(owner).post(f"/api/projects/{project.pk}/budget/approve", {"amount": 1},
                                      content_type="application/json")

    assert response.status_code == 200
    [event] = events(AuditAction.BUDGET_APPROVED)
    assert event.actor == "olivia" and event.project_id == project.pk and event.project_label == project.slug
    assert event.origin
    assert event.details["amount_usd"] == "1.00" and Decimal(event.details["budget_usd"]) == Decimal("6")
    assert Decimal(event.details["previous_budget_usd"]) == Decimal("5")


def test_a_settings_patch_records_each_changed_field_with_old_and_new_values(api_client, owner, project):
    old = project.max_concurrency

    response = api_client(owner).patch(f"/api/projects/{project.pk}", {"max_concurrency": old + 1},
                                       content_type="application/json")

    assert response.status_code == 200
    [event] = events(AuditAction.SETTINGS_CHANGED)
    assert event.details == {"max_concurrency": [old, old + 1]} and event.project_id == project.pk
    assert event.actor == "olivia"  # the request's authenticated user, from the work context


def test_a_settings_patch_that_changes_nothing_is_not_recorded(api_client, owner, project):
    api_client(owner).patch(f"/api/projects/{project.pk}", {"max_concurrency": project.max_concurrency},
                            content_type="application/json")

    assert not events(AuditAction.SETTINGS_CHANGED)


def test_a_notification_change_records_field_names_and_never_the_secrets(api_client, owner, project):
    body = {"webhook_enabled": True, "webhook_url": WEBHOOK, "sms_enabled": True, "sms_numbers": ["+15550001111"],
            "twilio_auth_token": TWILIO_TOKEN}

    response = api_client(owner).post(f"/api/projects/{project.slug}/notifications/preferences", body,
                                      content_type="application/json")

    assert response.status_code == 200
    [event] = events(AuditAction.NOTIFICATIONS_CHANGED)
    assert event.details == {"fields": sorted(body)}
    stored = json.dumps(list(AuditEvent.objects.values()), default=str)
    assert "auditsecretvalue77" not in stored and TWILIO_TOKEN not in stored


def test_killing_and_cancelling_sessions_and_the_run_are_recorded(api_client, owner, planned_project,
                                                                   queued_session):
    client = api_client(owner)
    killed, cancelled = queued_session(), queued_session()

    kill = client.post(f"/api/sessions/{killed.pk}/kill")
    cancel = client.post(f"/api/sessions/{cancelled.pk}/cancel")
    run = client.post(f"/api/projects/{planned_project.pk}/parallel/cancel")

    assert kill.status_code == cancel.status_code == run.status_code == 200
    assert [e.target for e in events(AuditAction.SESSION_KILLED)] == [f"session #{killed.pk}"]
    assert [e.target for e in events(AuditAction.SESSION_CANCELLED)] == [f"session #{killed.pk}",
                                                                         f"session #{cancelled.pk}"]
    [run_event] = events(AuditAction.RUN_CANCELLED)
    assert run_event.project_id == planned_project.pk
    kill_events = AuditEvent.objects.filter(target=f"session #{killed.pk}")
    assert len({e.correlation_id for e in kill_events}) == 1  # one request, one correlation id


def test_a_manual_pause_and_its_resume_record_who_did_them(api_client, owner, queued_session):
    session = queued_session()

    response = api_client(owner).post(f"/api/sessions/{session.pk}/pause", {"reason": "look first"},
                                      content_type="application/json")
    session = session_transition(session=session, status=AgentSession.Status.RUNNING, lease_owner="test")
    session = session_transition(session=session, status=AgentSession.Status.PAUSED, stop_reason="manual",
                                 owner="test")
    pause = pause_open(session=session, pause_type="manual", reason="olivia: look first")
    pause_resolve(pause=pause, by="carol", notes="carry on")

    assert response.status_code == 200
    [paused] = events(AuditAction.SESSION_PAUSED)
    assert paused.actor == "olivia" and paused.details["reason"] == "look first"
    [resumed] = events(AuditAction.SESSION_RESUMED)
    assert resumed.actor == "carol" and resumed.target == f"session #{session.pk}"
    assert resumed.details["pause_type"] == "manual" and resumed.details["notes"] == "carry on"


def test_the_actor_and_origin_come_from_the_work_context_unless_a_caller_names_one(project):
    with started(WorkContext(actor="dana", origin="web 203.0.113.7", correlation_id="c0ffee")):
        implicit = audit_record(action=AuditAction.SETTINGS_CHANGED, project=project)
        explicit = audit_record(action=AuditAction.SESSION_PAUSED, project=project.pk, actor="erin")
    outside = audit_record(action=AuditAction.RUN_CANCELLED)

    assert (implicit.actor, implicit.origin, implicit.correlation_id) == ("dana", "web 203.0.113.7", "c0ffee")
    assert explicit.actor == "erin" and explicit.project_id == project.pk
    assert outside.actor == "system" and outside.origin.startswith("process ")


def test_secret_looking_keys_are_masked_at_any_depth():
    event = audit_record(action=AuditAction.SETTINGS_CHANGED, details={
        "webhook_url": WEBHOOK, "nested": {"api_key": "k", "Password": "p", "items": [{"auth_header": "a"}]},
        "amount": Decimal("1.50"), "name": "x" * 2000})

    assert event.details["webhook_url"] == "***" and event.details["nested"]["api_key"] == "***"
    assert event.details["nested"]["Password"] == "***" and event.details["nested"]["items"] == [
        {"auth_header": "***"}]
    assert event.details["amount"] == "1.50" and len(event.details["name"]) == 500


def test_an_outsider_sees_only_their_projects_events_and_their_own_tokens(api_client, owner, outsider, staff,
                                                                          project):
    api_client(outsider)
    own = project_create(owner=outsider, name="Own thing")
    audit_record(action=AuditAction.SETTINGS_CHANGED, project=project)
    audit_record(action=AuditAction.SETTINGS_CHANGED, project=own)
    audit_record(action=AuditAction.TOKEN_CREATED, target="yf_other", actor="olivia")

    seen = list(audit_list(user=outsider))

    assert {(e.action, e.project_id, e.actor) for e in seen} == {
        (AuditAction.TOKEN_CREATED, None, "oscar"), (AuditAction.PROJECT_CREATED, own.pk, "oscar"),
        (AuditAction.SETTINGS_CHANGED, own.pk, "system")}
    assert len(audit_list(user=owner, action=AuditAction.SETTINGS_CHANGED)) == 1
    assert len(audit_list(user=staff)) == 6  # and the two projects' creation
    assert len(audit_list(user=staff, project=project, limit=1)) == 1


def test_audit_events_cannot_be_changed_or_deleted_one_by_one(project):
    event = audit_record(action=AuditAction.SETTINGS_CHANGED, project=project)

    event.actor = "mallory"
    with pytest.raises(AuditImmutableError, match="append-only"):
        event.save()
    with pytest.raises(AuditImmutableError, match="append-only"):
        event.delete()

    assert AuditEvent.objects.get(pk=event.pk).actor == "system"
    assert AuditEvent.objects.filter(pk=event.pk).delete()[0] == 1  # the prune's queryset delete still works


def test_a_deleted_project_keeps_its_audit_events(owner, project):
    event = audit_record(action=AuditAction.SETTINGS_CHANGED, project=project)

    pk, slug = project.pk, project.slug
    project.delete()

    kept = AuditEvent.objects.get(pk=event.pk)  # with the project it was about, by id and by the slug it had
    assert (kept.project_id, kept.project_label) == (pk, slug)


def test_the_admin_lists_events_read_only_for_staff(client, staff, project):
    event = audit_record(action=AuditAction.SETTINGS_CHANGED, target="project todo-service", project=project)
    client.force_login(staff)

    listed = client.get("/admin/core/auditevent/", {"q": "todo"})
    filtered = client.get("/admin/core/auditevent/", {"action__exact": "settings_changed"})
    add = client.get("/admin/core/auditevent/add/")
    change = client.post(f"/admin/core/auditevent/{event.pk}/change/", {"actor": "mallory"})
    delete = client.post(f"/admin/core/auditevent/{event.pk}/delete/", {"post": "yes"})

    assert listed.status_code == 200 and "project todo-service" in listed.content.decode()
    assert filtered.status_code == 200
    assert add.status_code == change.status_code == delete.status_code == 403
    assert AuditEvent.objects.get(pk=event.pk).actor == "system"


def test_the_command_lists_events_as_json_and_as_a_table(owner, project):
    project.budget_usd = Decimal("5")
    project.save()
    budget_approve(project=project, amount=Decimal("2"), by="olivia")
    audit_record(action=AuditAction.SETTINGS_CHANGED, project=project)

    rows = json.loads(yokeflow("audit", "--action", "budget_approved", "--json"))
    table = yokeflow("audit", "--project", project.slug, "--since", "7d")

    assert [(r["action"], r["actor"], r["project"]) for r in rows] == [("budget_approved", "olivia", project.slug)]
    assert rows[0]["details"]["amount_usd"] == "2.00" and rows[0]["correlation_id"]
    assert table.splitlines()[0].split() == ["time", "actor", "action", "target", "origin", "correlation", "id"]
    assert "budget_approved" in table and "settings_changed" in table
    assert "no audit events" in yokeflow("audit", "--since", "2999-01-01")


def test_the_command_refuses_bad_input_in_one_line():
    assert "--since" in str(refused("audit", "--since", "nonsense"))
    assert "action" in str(refused("audit", "--action", "teleported"))
    assert refused("audit", "--limit", "0").returncode != 0
