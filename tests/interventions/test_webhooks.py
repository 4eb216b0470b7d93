"""Outbound webhooks: signed so that an independent Standard Webhooks implementation verifies them, the secret
shown once and stored encrypted, and no way to aim them inside — loopback, private, link-local (metadata) and
names that resolve there are refused when saved and again when sent, and a redirect is never followed."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from apps.interventions.models import NotificationPreference
from apps.interventions.notifications import notify_pause
from tests.interventions.fakes import FakeHTTPServer

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _quick(settings):
    settings.NOTIFY_BACKOFF, settings.NOTIFY_RETRIES, settings.NOTIFY_TIMEOUT = 0, 2, 5


@pytest.fixture
def receiver():
    with FakeHTTPServer() as fake:
        yield fake


def save(client, project, **fields):
    return client.post(f"/api/projects/{project.slug}/notifications/preferences",
                       data=json.dumps({"webhook_enabled": True, "webhook_format": "generic", **fields}),
                       content_type="application/json")


def test_a_delivery_verifies_with_an_independent_implementation_and_a_forgery_does_not(
        pause, owner, api_client, receiver):
    client = api_client(owner)
    saved = save(client, pause.project, webhook_url=f"{receiver.url}/hook").json()
    secret = saved["webhook_secret"]

    [action] = notify_pause(pause=pause)

    assert action.action_status == "ok" and secret.startswith("whsec_")
    request = receiver.requests[0]
    headers = {name: request.headers[name] for name in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    assert Webhook(secret).verify(request.body, headers)["pause"]["id"] == pause.pk
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(request.body.replace(b"retry_limit", b"budget"), headers)  # a changed body
    other = Webhook("whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=")
    with pytest.raises(WebhookVerificationError):
        other.verify(request.body, headers)  # another destination's secret


def test_retries_of_one_message_keep_its_id_and_each_attempt_is_signed(pause, owner, api_client):
    with FakeHTTPServer(fail_first=1) as flaky:
        secret = save(api_client(owner), pause.project, webhook_url=f"{flaky.url}/hook").json()["webhook_secret"]
        notify_pause(pause=pause)

    first, second = flaky.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    for request in (first, second):
        Webhook(secret).verify(request.body, {k: request.headers[k] for k in
                                              ("webhook-id", "webhook-timestamp", "webhook-signature")})


def test_the_secret_is_shown_once_stored_encrypted_and_rotated_on_request(pause, owner, api_client, receiver):
    client = api_client(owner)
    first = save(client, pause.project, webhook_url=f"{receiver.url}/hook").json()["webhook_secret"]
    read = client.get(f"/api/projects/{pause.project.slug}/notifications/preferences").json()
    again = save(client, pause.project, email_enabled=False).json()
    rotated = save(client, pause.project, rotate_webhook_secret=True).json()["webhook_secret"]

    assert read["webhook_secret"] is None and again["webhook_secret"] is None
    assert rotated.startswith("whsec_") and rotated != first
    with connection.cursor() as cursor:
        cursor.execute("SELECT webhook_secret FROM interventions_notificationpreference")
        [(stored,)] = cursor.fetchall()
    assert rotated not in stored and rotated.removeprefix("whsec_") not in stored


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9/hook", "http://10.1.2.3/hook", "http://192.168.0.10/hook",
    "http://169.254.169.254/latest/meta-data/", "http://[::1]:9/hook", "http://localhost:9/hook",
    "http://0.0.0.0:9/hook", "ftp://example.com/hook", "http://user:pw@example.com/hook",
])
def test_inside_destinations_are_refused_when_saved(url, pause, owner, api_client, settings):
    settings.WEBHOOK_ALLOWED_NETS = []  # the default: public addresses only

    response = save(api_client(owner), pause.project, webhook_url=url)

    assert response.status_code == 422 and "webhook_url" in response.text
    assert not NotificationPreference.objects.filter(project=pause.project).exists()


def test_a_destination_that_moved_inside_is_refused_at_send_time_and_nothing_reaches_it(pause, receiver, settings):
    # Saved while allowed (or while its name pointed outside); now it points at loopback and the allowance is gone.
    NotificationPreference.objects.create(project=pause.project, webhook_enabled=True, webhook_format="generic",
                                          webhook_url=f"{receiver.url}/hook")
    settings.WEBHOOK_ALLOWED_NETS = []

    [action] = notify_pause(pause=pause)

    assert receiver.requests == []  # the harmful effect did not happen
    assert action.action_status == "failed" and "not a public address" in action.action_details["error"]
    assert action.action_details["attempts"] == 1  # a refused destination is not retried


def test_a_redirect_is_not_followed(pause, make_user):
    with FakeHTTPServer() as inside, FakeHTTPServer(status=302) as outside:
        outside.location = f"{inside.url}/metadata"
        NotificationPreference.objects.create(project=pause.project, webhook_enabled=True, webhook_format="generic",
                                              webhook_url=f"{outside.url}/hook")
        [action] = notify_pause(pause=pause)

    assert len(outside.requests) == 1 and inside.requests == []
    assert action.action_status == "failed" and "redirects are not followed" in action.action_details["error"]
