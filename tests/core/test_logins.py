"""Login throttling through the real login form: after LOGIN_FAILURE_LIMIT failures the next try is refused even
with the right password, per username and per address; staff unlock; every step is in the audit log."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from apps.core.models import AuditEvent

pytestmark = pytest.mark.django_db

LIMIT = 10


def attempt(username: str, password: str, address: str = "198.51.100.7") -> int:
    client = Client(REMOTE_ADDR=address)
    response = client.post("/login/", {"username": username, "password": password})
    logged_in = "_auth_user_id" in client.session
    return 302 if logged_in else response.status_code


def actions() -> list[str]:
    return list(AuditEvent.objects.order_by("pk").values_list("action", flat=True))


def test_the_eleventh_try_is_refused_even_with_the_right_password(owner, settings):
    assert settings.AXES_FAILURE_LIMIT == LIMIT
    assert [attempt("olivia", f"wrong-{i}") for i in range(LIMIT - 1)] == [200] * (LIMIT - 1)
    assert attempt("olivia", "wrong-last") == 429  # the tenth failure locks

    assert attempt("olivia", "pw-olivia") == 429  # the right password, refused while locked
    assert attempt("olivia", "pw-olivia", address="203.0.113.9") == 429  # locked per user, from anywhere
    assert actions().count("login_failed") == LIMIT + 2  # refused tries while locked count as failures too
    assert actions().count("login_locked_out") == 3
    assert "login_succeeded" not in actions()


def test_one_address_guessing_many_names_is_locked_too(owner, make_user):
    make_user("nina")
    for i in range(LIMIT):
        attempt(f"nobody-{i}", "guess", address="192.0.2.50")

    assert attempt("nina", "pw-nina", address="192.0.2.50") == 429  # this address is locked
    assert attempt("nina", "pw-nina", address="192.0.2.51") == 302  # the user is not


def test_staff_unlock_lets_the_user_in_and_a_success_resets_the_count(owner):
    for i in range(LIMIT):
        attempt("olivia", f"wrong-{i}")
    assert attempt("olivia", "pw-olivia") == 429

    call_command("yokeflow", "unlock", "olivia")
    call_command("yokeflow", "unlock", "--ip", "198.51.100.7")

    assert attempt("olivia", "pw-olivia") == 302
    assert actions()[-1] == "login_succeeded" and actions().count("login_unlocked") == 2
    for i in range(LIMIT - 1):  # the success cleared the failures: nine more do not lock
        attempt("olivia", f"again-{i}")
    assert attempt("olivia", "pw-olivia") == 302


def test_unlock_without_a_name_or_address_is_one_readable_error():
    with pytest.raises(CommandError, match="name the username or the address to unlock"):
        call_command("yokeflow", "unlock")


def test_a_failed_login_keeps_the_password_out_of_the_log(owner):
    attempt("olivia", "Hunter2-secret-guess")

    event = AuditEvent.objects.get(action="login_failed")
    assert event.actor == "olivia" and "Hunter2" not in str(event.details)
