"""The interventions API and command line: lists, resume (once), preferences with secrets that never come back."""

from __future__ import annotations

import logging

import pytest
from django.db import connection

from apps.agents.models import AgentSession
from apps.interventions.models import NotificationPreference, PausedSession
from tests.projects.test_cli import refused, yokeflow

pytestmark = pytest.mark.django_db

WEBHOOK = "https://hooks.slack.com/services/T000/B000/topsecretvalue42"
TWILIO_TOKEN = "twilio-auth-token-very-secret-99"


def test_active_lists_the_projects_pauses_with_their_details(api_client, owner, outsider, pause):
    response = api_client(owner).get(f"/api/interventions/active?project_id={pause.project.slug}")

    assert response.status_code == 200
    [row] = response.json()
    assert row["id"] == pause.pk and row["pause_type"] == "retry_limit" and row["session_status"] == "paused"
    assert row["retry_stats"]["pytest -q"]["count"] == 2 and row["current_task_key"] == pause.current_task.key
    assert [action["action_type"] for action in row["actions"]] == ["paused"]
    assert api_client(outsider).get("/api/interventions/active").json() == []
    assert api_client(outsider).get(f"/api/interventions/active?project_id={pause.project.slug}").status_code == 404


def test_resume_continues_the_session_once_and_refuses_the_second_time(api_client, owner, pause):
    client = api_client(owner)
    body = {"resolved_by": "alice", "resolution_notes": "fixed the fixture"}

    first = client.post(f"/api/interventions/{pause.pk}/resume", body, content_type="application/json")
    second = client.post(f"/api/interventions/{pause.pk}/resume", body, content_type="application/json")

    assert first.status_code == 200 and first.json()["resolved"] and first.json()["resolved_by"] == "alice"
    assert AgentSession.objects.get(pk=pause.session_id).status == "queued"  # its continuation is queued
    assert second.status_code == 409 and second.json()["error"] == "already_resolved"
    assert "already resolved by alice" in second.json()["message"]
    history = client.get(f"/api/interventions/history?project_id={pause.project_id}&limit=5").json()
    assert [row["id"] for row in history] == [pause.pk]
    assert client.get("/api/interventions/active").json() == []


def test_resume_needs_a_name_and_the_right_to_operate(api_client, owner, viewer, pause):
    missing = api_client(owner).post(f"/api/interventions/{pause.pk}/resume", {"resolution_notes": "x"},
                                     content_type="application/json")
    blank = api_client(owner).post(f"/api/interventions/{pause.pk}/resume", {"resolved_by": "  "},
                                   content_type="application/json")
    forbidden = api_client(viewer).post(f"/api/interventions/{pause.pk}/resume", {"resolved_by": "v"},
                                        content_type="application/json")
    unknown = api_client(owner).post("/api/interventions/999999/resume", {"resolved_by": "a"},
                                     content_type="application/json")

    assert missing.status_code == 422 and "resolved_by" in str(missing.json())
    assert blank.status_code == 422
    assert forbidden.status_code == 403 and unknown.status_code == 404
    assert not PausedSession.objects.get(pk=pause.pk).resolved


def test_preferences_store_secrets_encrypted_and_show_them_masked(api_client, owner, project, caplog):
    caplog.set_level(logging.DEBUG)
    client = api_client(owner)
    body = {"webhook_enabled": True, "webhook_url": WEBHOOK, "email_enabled": True,
            "email_addresses": ["a@example.com", "b@example.com"], "sms_enabled": True,
            "sms_numbers": ["+15550001111"], "twilio_account_sid": "AC0123456789abcdef",
            "twilio_auth_token": TWILIO_TOKEN, "twilio_from_number": "+15559990000", "min_notification_interval": 60}

    saved = client.post(f"/api/projects/{project.slug}/notifications/preferences", body,
                        content_type="application/json")
    read = client.get(f"/api/projects/{project.slug}/notifications/preferences")

    assert saved.status_code == 200 and read.status_code == 200
    shown = read.json()
    assert shown["webhook_url"] == "https://hooks.slack.com/…ue42" and shown["webhook_url_set"]
    assert shown["twilio_auth_token_set"] and shown["email_addresses"] == ["a@example.com", "b@example.com"]
    for text in (saved.content.decode(), read.content.decode(), caplog.text):
        assert "topsecretvalue42" not in text and TWILIO_TOKEN not in text
    with connection.cursor() as cursor:
        cursor.execute("SELECT webhook_url, twilio_auth_token, twilio_account_sid FROM "
                       f"{NotificationPreference._meta.db_table}")
        raw = " ".join(cursor.fetchone())
    assert "topsecretvalue42" not in raw and TWILIO_TOKEN not in raw and raw.startswith("enc1:")
    assert NotificationPreference.objects.get(project=project).webhook_url == WEBHOOK


def test_preferences_refuse_bad_input_and_keep_what_was_stored(api_client, owner, viewer, project):
    client = api_client(owner)
    url = f"/api/projects/{project.slug}/notifications/preferences"
    client.post(url, {"email_enabled": True, "email_addresses": ["ok@example.com"]}, content_type="application/json")

    bad_email = client.post(url, {"email_addresses": ["not-an-address"]}, content_type="application/json")
    bad_url = client.post(url, {"webhook_url": "ftp://x"}, content_type="application/json")
    no_target = client.post(url, {"sms_enabled": True}, content_type="application/json")
    by_viewer = api_client(viewer).post(url, {"email_enabled": False}, content_type="application/json")

    assert bad_email.status_code == 422 and "email_addresses" in str(bad_email.json())
    assert bad_url.status_code == 422 and "webhook_url" in str(bad_url.json())
    assert no_target.status_code == 422 and "sms_numbers" in no_target.json()["details"]["fields"]
    assert by_viewer.status_code == 403
    pref = NotificationPreference.objects.get(project=project)
    assert pref.email_enabled and pref.email_addresses == ["ok@example.com"] and not pref.sms_enabled


def test_the_command_line_lists_and_resumes_pauses(pause):
    listed = yokeflow("interventions", "--project", pause.project.slug)
    assert f"#{pause.pk}" in listed and "retry_limit" in listed and "yokeflow resume" in listed

    resumed = yokeflow("resume", str(pause.pk), "--by", "carol", "--notes", "installed the fixture")

    assert f"pause #{pause.pk} resolved by carol" in resumed
    assert PausedSession.objects.get(pk=pause.pk).resolution_notes == "installed the fixture"
    assert "already resolved by carol" in str(refused("resume", str(pause.pk), "--by", "dave"))
    assert "no paused sessions" in yokeflow("interventions")
    assert f"#{pause.pk}" in yokeflow("interventions", "--history")
    assert "not found" in str(refused("resume", "424242", "--by", "x"))
