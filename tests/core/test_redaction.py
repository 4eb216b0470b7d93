"""Secrets in transcripts: every kind is masked when stored, and masked again when served (page, API, export),
so a row written before a pattern existed does not show its secret either. Ordinary text is left alone."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from apps.agents.models import SessionEvent
from apps.agents.services import events_append
from apps.core.redaction import MASK, redact

SECRETS = {
    "database URL": ("postgres://app:Sup3rS3cret@db.internal:5432/prod", "Sup3rS3cret"),
    "redis URL": ("redis://:R3disPassw0rd@cache:6379/0", "R3disPassw0rd"),
    "amqp URL": ("amqp://guest:Gu3stPassw0rd@mq/", "Gu3stPassw0rd"),
    "GitHub classic token": ("ghp_" + "A1b2C3d4E5" * 3 + "F6g7H8", "A1b2C3d4E5A1b2"),
    "GitHub app token": ("ghs_" + "Z9y8X7w6V5" * 3 + "U4t3S2", "Z9y8X7w6V5Z9y8"),
    "GitHub fine-grained token": ("github_pat_11ABCDEFG0" + "x" * 40, "github_pat_11ABCDEFG0"),
    "AWS access key id": ("AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    "AWS secret key": ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI"),
    "Slack bot token": ("xoxb-2710040-1234567890-AbCdEfGhIjKlMnOp", "AbCdEfGhIjKlMnOp"),
    "Slack app token": ("xapp-1-A0123456789-123456-abcdef0123456789", "abcdef0123456789"),
    "PEM private key": ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\n"
                        "-----END OPENSSH PRIVATE KEY-----", "b3BlbnNzaC1rZXktdjEAAAA"),
    "JWT": ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJvbGl2aWEifQ.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "dozjgNryP4J3jVmNHl0w5N"),
    "named secret": ("STRIPE_API_KEY=rk_live_51Habcdefgh", "rk_live_51Habcdefgh"),
    "named password": ("db_password: correct-horse-battery", "correct-horse-battery"),
}
ORDINARY = ["input tokens: 12000", "git commit -m 'add the token table'", "https://example.com/path?page=2",
            "the password field is required", "sha 3f5a9c0d2e1b4a7f8c6d5e4f3a2b1c0d9e8f7a6b"]


@pytest.mark.parametrize("kind", list(SECRETS))
def test_each_kind_is_masked(kind):
    text, secret = SECRETS[kind]
    masked = redact(f"output: {text} (end)")
    assert secret not in masked and MASK in masked and masked.startswith("output: ")


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_text_is_left_alone(text):
    assert redact(text) == text


@pytest.mark.django_db
def test_secrets_are_masked_when_stored_and_when_served(coding_session, owner, client, api_client):
    lines = "\n".join(text for text, _ in SECRETS.values())
    events_append(session=coding_session, events=[("tool_result", {"content": lines})])
    # A row written before today's patterns: stored as it was, raw.
    SessionEvent.objects.create(session=coding_session, seq=SessionEvent.objects.count() + 1, type="text",
                                payload={"text": lines})

    stored = json.dumps(list(SessionEvent.objects.filter(type="tool_result").values_list("payload", flat=True)))
    client.force_login(owner)
    page = client.get(f"/sessions/{coding_session.pk}/").text
    api = api_client(owner).get(f"/api/sessions/{coding_session.pk}/events").text
    export = _export(coding_session.pk)

    for kind, (_, secret) in SECRETS.items():
        assert secret not in stored, f"{kind} stored"
        for name, served in (("page", page), ("API", api), ("export", export)):
            assert secret not in served, f"{kind} served by the {name}"
    assert MASK in page and MASK in api and MASK in export


def _export(session_id: int) -> str:
    import io

    out = io.StringIO()
    call_command("yokeflow", "transcript", str(session_id), "--json", stdout=out)
    return out.getvalue()
