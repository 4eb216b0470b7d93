"""Key rotation: with a new key first, `yokeflow secrets rotate` re-encrypts every stored secret so the old key
can be dropped; a deployment on the key derived from SECRET_KEY moves to real keys the same way; a value no key
reads is left untouched, never blanked."""

from __future__ import annotations

import io

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from apps.core.crypto import PREFIX
from apps.core.models import AuditEvent
from apps.interventions.models import NotificationPreference

pytestmark = pytest.mark.django_db
SECRET = "https://hooks.example.com/services/T0/B0/very-secret-path"


def stored_value(pref: NotificationPreference) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT webhook_url FROM interventions_notificationpreference WHERE id = %s", [pref.pk])
        return cursor.fetchone()[0]


def rotate() -> str:
    out = io.StringIO()
    call_command("yokeflow", "secrets", "rotate", stdout=out)
    return out.getvalue()


def readable_with(key: str, stored: str) -> bool:
    try:
        return Fernet(key.encode()).decrypt(stored[len(PREFIX):].encode()).decode() == SECRET
    except Exception:
        return False


def test_rotation_moves_every_secret_to_the_new_key_so_the_old_one_can_go(project, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.ENCRYPTION_KEYS = [old]
    pref = NotificationPreference.objects.create(project=project, webhook_url=SECRET, twilio_auth_token="tok-12345678")
    assert readable_with(old, stored_value(pref))

    settings.ENCRYPTION_KEYS = [new, old]
    assert "re-encrypted 2 stored secret(s)" in rotate()

    assert readable_with(new, stored_value(pref)) and not readable_with(old, stored_value(pref))
    settings.ENCRYPTION_KEYS = [new]  # the old key is gone: everything still reads
    assert NotificationPreference.objects.get(pk=pref.pk).webhook_url == SECRET
    assert AuditEvent.objects.get(action="secrets_rotated").details == {"rotated": 2, "unreadable": 0}


def test_a_deployment_on_the_derived_key_moves_to_real_keys(project, settings):
    settings.ENCRYPTION_KEYS = []
    pref = NotificationPreference.objects.create(project=project, webhook_url=SECRET)
    key = Fernet.generate_key().decode()

    settings.ENCRYPTION_KEYS = [key]
    rotate()

    assert readable_with(key, stored_value(pref))


def test_a_value_no_key_reads_is_left_as_it_is(project, settings):
    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    pref = NotificationPreference.objects.create(project=project, webhook_url=SECRET)
    before = stored_value(pref)

    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    settings.SECRET_KEY = "another-secret-key-entirely"
    output = rotate()

    assert "1 could not be read with any key" in output and stored_value(pref) == before
