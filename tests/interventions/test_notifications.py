"""Pause notifications against real local HTTP servers (webhooks, Twilio) and Django's locmem mailer."""

from __future__ import annotations

import base64
import logging

import pytest
from django.core import mail
from django.db import connection

from apps.interventions.messages import pause_message, sms_body, webhook_format_for
from apps.interventions.models import InterventionAction, NotificationPreference
from apps.interventions.notifications import notify_pause
from tests.interventions.fakes import FakeHTTPServer, closed_port_url

HOOK_SECRET = "T000/B000/sEcReT-hook-token-42"
TWILIO_SID = "AC0123456789abcdef0123456789abcdef"
TWILIO_TOKEN = "twilio-auth-token-very-secret-99"


@pytest.fixture(autouse=True)
def _fast_retries(settings):
    settings.NOTIFY_BACKOFF = 0
    settings.NOTIFY_RETRIES = 3
    settings.NOTIFY_TIMEOUT = 5
    settings.SITE_URL = "https://yokeflow.example"


@pytest.fixture
def server():
    with FakeHTTPServer() as fake:
        yield fake


@pytest.fixture
def make_pref(pause):
    def make(**fields) -> NotificationPreference:
        return NotificationPreference.objects.create(project=pause.project, min_notification_interval=300, **fields)

    return make


def webhook_pref(make_pref, url: str, fmt: str = "generic", **fields) -> NotificationPreference:
    return make_pref(webhook_enabled=True, webhook_url=url, webhook_format=fmt, **fields)


def sms_pref(make_pref, numbers: list[str], **fields) -> NotificationPreference:
    return make_pref(sms_enabled=True, sms_numbers=numbers, twilio_account_sid=TWILIO_SID,
                     twilio_auth_token=TWILIO_TOKEN, twilio_from_number="+15550000000", **fields)


def notifications(pause) -> list[InterventionAction]:
    return list(pause.actions.filter(action_type="notification").order_by("pk"))


# -- webhook formats ------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_slack_webhook_gets_an_attachment_with_fields_and_a_link(pause, make_pref, server):
    webhook_pref(make_pref, f"{server.url}/services/{HOOK_SECRET}", fmt="slack")

    [action] = notify_pause(pause=pause)

    [request] = server.requests
    assert request.method == "POST" and request.path == f"/services/{HOOK_SECRET}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("YokeFlow")
    payload = request.json()
    assert payload["text"].startswith(f"YokeFlow: session #{pause.session_id} paused — same failing command")
    [attachment] = payload["attachments"]
    assert attachment["color"].startswith("#") and attachment["footer"] == "YokeFlow"
    assert attachment["title_link"] == f"https://yokeflow.example/interventions/?project={pause.project.slug}"
    assert attachment["text"] == pause.pause_reason
    assert attachment["ts"] == int(pause.paused_at.timestamp())
    fields = {field["title"]: field["value"] for field in attachment["fields"]}
    assert fields["Task"] == "T1: Project skeleton and test runner"
    assert "pytest -q" in fields["Blocker"] and "AssertionError: 1 != 2" in fields["Blocker"]
    assert fields["Resume"] == f'yokeflow resume {pause.pk} --by NAME --notes "..."'
    assert action.action_status == "ok"
    assert action.action_details["channel"] == "webhook" and action.action_details["format"] == "slack"
    assert action.action_details["http_status"] == 200 and action.action_details["attempts"] == 1


@pytest.mark.django_db
def test_discord_webhook_gets_an_embed(pause, make_pref, server):
    webhook_pref(make_pref, f"{server.url}/api/webhooks/1/{HOOK_SECRET}", fmt="discord")

    [action] = notify_pause(pause=pause)

    payload = server.requests[0].json()
    assert payload["content"].startswith("YokeFlow: session #")
    [embed] = payload["embeds"]
    assert embed["url"].endswith(f"/interventions/?project={pause.project.slug}")
    assert embed["description"] == pause.pause_reason
    assert isinstance(embed["color"], int) and embed["timestamp"] == pause.paused_at.isoformat()
    assert {field["name"] for field in embed["fields"]} >= {"Project", "Task", "Pause type", "Resume"}
    assert all(field["value"] for field in embed["fields"])
    assert action.action_status == "ok" and action.action_details["format"] == "discord"


@pytest.mark.django_db
def test_generic_webhook_gets_the_pause_as_json(pause, make_pref, server):
    webhook_pref(make_pref, f"{server.url}/hook", fmt="auto")  # 127.0.0.1 is neither Slack nor Discord

    [action] = notify_pause(pause=pause)

    body = server.requests[0].json()
    assert body["event"] == "session_paused"
    data = body["pause"]
    assert data["id"] == pause.pk and data["type"] == "retry_limit" and data["session_id"] == pause.session_id
    assert data["project"] == {"id": pause.project.pk, "slug": pause.project.slug, "name": "Todo service"}
    assert data["task"] == {"key": "T1", "title": "Project skeleton and test runner"}
    assert data["blocker_info"]["command"] == "pytest -q"
    assert data["retry_stats"]["pytest -q"]["count"] == 2
    assert data["paused_at"] == pause.paused_at.isoformat()
    assert data["resume_url"].startswith("https://yokeflow.example/interventions/")
    assert data["resume_command"].startswith(f"yokeflow resume {pause.pk} --by")
    assert action.action_details["format"] == "generic"


@pytest.mark.parametrize(("url", "expected"), [
    ("https://hooks.slack.com/services/T0/B0/abc", "slack"),
    ("https://discord.com/api/webhooks/1/abc", "discord"),
    ("https://canary.discord.com/api/webhooks/1/abc", "discord"),
    ("https://discordapp.com/api/webhooks/1/abc", "discord"),
    ("https://discord.com/channels/1/2", "generic"),
    ("https://example.com/hooks.slack.com/services/x", "generic"),
    ("https://hooks.slack.com.evil.example/services/x", "generic"),
    ("https://ops.example.com/yokeflow", "generic"),
    ("", "generic"),
])
def test_auto_format_is_chosen_by_host(url, expected):
    assert webhook_format_for(url=url, fmt="auto") == expected


def test_an_explicit_format_wins_over_the_host():
    assert webhook_format_for(url="https://hooks.slack.com/services/x", fmt="generic") == "generic"


# -- email and SMS ---------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_one_email_with_text_and_html_goes_to_every_address(pause, make_pref, settings):
    settings.DEFAULT_FROM_EMAIL = "YokeFlow <ops@yokeflow.example>"
    pause.pause_reason = "<script>alert(1)</script> broke"
    pause.save(update_fields=["pause_reason"])
    make_pref(email_enabled=True, email_addresses=["ann@example.com", "bob@example.com"])

    [action] = notify_pause(pause=pause)

    [email] = mail.outbox
    assert email.to == ["ann@example.com", "bob@example.com"]
    assert email.from_email == "YokeFlow <ops@yokeflow.example>"
    assert email.subject.startswith(f"YokeFlow: session #{pause.session_id} paused")
    assert "T1: Project skeleton and test runner" in email.body
    assert f"yokeflow resume {pause.pk} --by NAME" in email.body
    assert "<script>alert(1)</script> broke" in email.body  # plain text is not HTML-escaped
    [(html, mimetype)] = email.alternatives
    assert mimetype == "text/html"
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert f'href="https://yokeflow.example/interventions/?project={pause.project.slug}"' in html
    assert action.action_status == "ok" and action.action_details["channel"] == "email"


@pytest.mark.django_db
def test_sms_goes_to_each_number_through_twilio_with_basic_auth(pause, make_pref, server, settings):
    settings.TWILIO_API_BASE = server.url
    sms_pref(make_pref, ["+15551112222", "+15553334444"])

    actions = notify_pause(pause=pause)

    assert len(server.requests) == 2
    expected_auth = "Basic " + base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
    for request in server.requests:
        assert request.path == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
        assert request.headers["authorization"] == expected_auth
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    forms = sorted((request.form() for request in server.requests), key=lambda form: form["To"])
    assert [form["To"] for form in forms] == ["+15551112222", "+15553334444"]
    assert {form["From"] for form in forms} == {"+15550000000"}
    body = forms[0]["Body"]
    assert len(body) <= 160 and f"yokeflow resume {pause.pk}" in body and "T1" in body
    assert sorted(action.action_details["target"] for action in actions) == ["…2222", "…4444"]
    assert {action.action_status for action in actions} == {"ok"}


@pytest.mark.django_db
def test_sms_falls_back_to_the_twilio_settings(pause, make_pref, server, settings):
    settings.TWILIO_API_BASE = server.url
    settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN, settings.TWILIO_FROM_NUMBER = "ACsettings", "tok", "+1999"
    make_pref(sms_enabled=True, sms_numbers=["+15551112222"])

    [action] = notify_pause(pause=pause)

    assert action.action_status == "ok"
    assert server.requests[0].path == "/2010-04-01/Accounts/ACsettings/Messages.json"
    assert server.requests[0].form()["From"] == "+1999"


@pytest.mark.django_db
def test_sms_without_credentials_fails_without_a_request(pause, make_pref, server, settings):
    settings.TWILIO_API_BASE = server.url
    settings.TWILIO_ACCOUNT_SID = settings.TWILIO_AUTH_TOKEN = None
    make_pref(sms_enabled=True, sms_numbers=["+15551112222"], twilio_from_number="+1999")

    [action] = notify_pause(pause=pause)

    assert action.action_status == "failed"
    assert action.action_details["error"] == "SMS credentials are not configured"
    assert action.action_details["attempts"] == 0
    assert server.requests == []


@pytest.mark.django_db
def test_sms_body_fits_one_segment_even_for_long_names(pause):
    message = pause_message(pause=pause)
    message["project"] = {**message["project"], "slug": "x" * 300}

    body = sms_body(message=message)

    assert len(body) <= 160 and body.endswith(f"yokeflow resume {pause.pk}")


# -- delivery: concurrency, retries, failures -----------------------------------------------------------------------


@pytest.mark.django_db
def test_channels_are_sent_concurrently(pause, make_pref, settings):
    with FakeHTTPServer(delay=0.5) as slow:
        settings.TWILIO_API_BASE = slow.url
        sms_pref(make_pref, ["+15550000001", "+15550000002", "+15550000003"],
                 webhook_enabled=True, webhook_url=f"{slow.url}/hook", webhook_format="generic")

        actions = notify_pause(pause=pause)

    assert len(slow.requests) == 4 and {action.action_status for action in actions} == {"ok"}
    # Sent one after another, each request would arrive only after the previous one was answered.
    assert max(r.received_at for r in slow.requests) < min(r.answered_at for r in slow.requests)


@pytest.mark.django_db
def test_a_failing_endpoint_is_retried_until_it_answers(pause, make_pref):
    with FakeHTTPServer(fail_first=2, fail_status=503) as flaky:
        webhook_pref(make_pref, f"{flaky.url}/hook")

        [action] = notify_pause(pause=pause)

    assert [request.status for request in flaky.requests] == [503, 503, 200]
    assert action.action_status == "ok"
    assert action.action_details["attempts"] == 3 and action.action_details["http_status"] == 200


@pytest.mark.django_db
def test_rate_limited_answers_are_retried(pause, make_pref):
    with FakeHTTPServer(fail_first=1, fail_status=429) as limited:
        webhook_pref(make_pref, f"{limited.url}/hook")

        [action] = notify_pause(pause=pause)

    assert action.action_status == "ok" and action.action_details["attempts"] == 2


@pytest.mark.django_db
def test_an_endpoint_that_always_fails_is_recorded_as_failed(pause, make_pref):
    with FakeHTTPServer(fail_always=True) as broken:
        webhook_pref(make_pref, f"{broken.url}/hook")

        [action] = notify_pause(pause=pause)

    assert len(broken.requests) == 3
    assert action.action_status == "failed"
    assert action.action_details["attempts"] == 3 and action.action_details["http_status"] == 500
    assert action.action_details["error"].startswith("HTTP 500")


@pytest.mark.django_db
def test_a_client_error_is_not_retried(pause, make_pref):
    with FakeHTTPServer(fail_always=True, fail_status=400) as refusing:
        webhook_pref(make_pref, f"{refusing.url}/hook")

        [action] = notify_pause(pause=pause)

    assert len(refusing.requests) == 1
    assert action.action_status == "failed"
    assert action.action_details["attempts"] == 1 and action.action_details["http_status"] == 400


@pytest.mark.django_db
def test_a_server_that_is_down_is_recorded_not_raised(pause, make_pref):
    webhook_pref(make_pref, f"{closed_port_url()}/hook", email_enabled=True, email_addresses=["ann@example.com"])

    actions = notify_pause(pause=pause)

    by_channel = {action.action_details["channel"]: action for action in actions}
    assert by_channel["webhook"].action_status == "failed"
    assert by_channel["webhook"].action_details["attempts"] == 3
    assert by_channel["webhook"].action_details["error"].startswith("connection failed")
    assert by_channel["email"].action_status == "ok"  # one channel down does not stop the others
    assert len(mail.outbox) == 1


# -- when nothing is sent --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_second_pause_within_the_interval_is_skipped(pause, make_pref, server):
    webhook_pref(make_pref, f"{server.url}/hook")
    notify_pause(pause=pause)

    [action] = notify_pause(pause=pause)

    assert len(server.requests) == 1
    assert action.action_status == "skipped" and action.action_details["reason"] == "rate_limited"
    assert action.action_details["next_allowed_at"] > pause.paused_at.isoformat()


@pytest.mark.django_db
def test_no_interval_means_every_pause_is_sent(pause, make_pref, server):
    pref = webhook_pref(make_pref, f"{server.url}/hook")
    NotificationPreference.objects.filter(pk=pref.pk).update(min_notification_interval=0)

    notify_pause(pause=pause)
    notify_pause(pause=pause)

    assert len(server.requests) == 2


@pytest.mark.django_db
def test_unwanted_pause_types_are_skipped(pause, make_pref, server):
    webhook_pref(make_pref, f"{server.url}/hook", notify_on_retry_limit=False)

    [action] = notify_pause(pause=pause)

    assert action.action_status == "skipped" and action.action_details["reason"] == "not_wanted"
    assert server.requests == []
    assert NotificationPreference.objects.get(project=pause.project).last_notified_at is None


@pytest.mark.django_db
def test_a_project_without_preferences_is_skipped(pause):
    [action] = notify_pause(pause=pause)

    assert action.action_status == "skipped" and action.action_details["reason"] == "no_preferences"
    assert notifications(pause) == [action]


# -- secrets ---------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_secrets_are_never_stored_or_logged_in_plain_text(pause, make_pref, server, settings, caplog):
    caplog.set_level(logging.DEBUG)
    settings.TWILIO_API_BASE = server.url
    pref = sms_pref(make_pref, ["+15551112222"], webhook_enabled=True, webhook_format="slack",
                    webhook_url=f"{server.url}/services/{HOOK_SECRET}")
    notify_pause(pause=pause)
    with FakeHTTPServer(fail_always=True) as broken:  # failures are logged and recorded too
        pref.webhook_url, pref.last_notified_at = f"{broken.url}/services/{HOOK_SECRET}", None
        pref.save()
        notify_pause(pause=pause)

    table = NotificationPreference._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT webhook_url, twilio_account_sid, twilio_auth_token FROM {table}")
        raw = " ".join(str(value) for value in cursor.fetchone())
    actions = notifications(pause)
    details = " ".join(str(action.action_details) for action in actions)
    logged = " ".join(record.getMessage() for record in caplog.records)
    assert {action.action_status for action in actions} == {"ok", "failed"}
    assert raw.count("enc1:") == 3
    for secret in (HOOK_SECRET, TWILIO_SID, TWILIO_TOKEN):
        assert secret not in raw and secret not in details and secret not in logged
    assert "+15551112222" not in details and "+15551112222" not in logged
