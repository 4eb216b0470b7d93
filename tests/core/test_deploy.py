"""Deploy-ready: `check --deploy` with production settings passes with no warning; plain HTTP is redirected
(the probes excepted); pages carry a strict content security policy that the pages themselves keep to."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]


def test_check_deploy_passes_with_production_settings_and_no_email():
    env = {name: value for name, value in os.environ.items() if not name.startswith(("EMAIL_", "SECURE_", "DEBUG"))}
    env.update(DJANGO_SETTINGS_MODULE="yokeflow.settings", DEBUG="0", SECRET_KEY=secrets.token_urlsafe(50),
               ALLOWED_HOSTS="yokeflow.example.com", ENCRYPTION_KEYS=Fernet.generate_key().decode())
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=120, check=False)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout

    del env["ENCRYPTION_KEYS"]  # the key derived from SECRET_KEY is a development convenience: warned about
    warned = subprocess.run([sys.executable, "manage.py", "check", "--deploy"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert "yokeflow.W001" in warned.stdout + warned.stderr


@pytest.mark.django_db
def test_plain_http_is_redirected_but_the_probes_answer(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31_536_000

    page = client.get("/login/")
    assert page.status_code == 301 and page["Location"] == "https://testserver/login/"
    assert client.get("/health").status_code in (200, 503)  # answered, not redirected
    secure = client.get("/login/", secure=True)
    assert secure.status_code == 200 and secure["Strict-Transport-Security"].startswith("max-age=31536000")


@pytest.mark.django_db
def test_pages_carry_a_policy_that_allows_only_this_sites_scripts(client, owner):
    client.force_login(owner)
    policy = client.get("/").headers["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))

    assert directives["script-src"] == "'self'" and directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'" and "unsafe-eval" not in policy


@pytest.mark.django_db
def test_without_an_email_host_an_email_notification_fails_with_the_reason(pause, settings):
    from apps.interventions.models import NotificationPreference
    from apps.interventions.notifications import notify_pause

    settings.MAILERS = {"default": {"BACKEND": "apps.core.mail.UnconfiguredEmailBackend"}}
    settings.NOTIFY_BACKOFF, settings.NOTIFY_RETRIES = 0, 1
    NotificationPreference.objects.create(project=pause.project, email_enabled=True, email_addresses=["o@x.example"])

    [action] = notify_pause(pause=pause)

    assert action.action_status == "failed" and "email is not configured" in action.action_details["error"]
