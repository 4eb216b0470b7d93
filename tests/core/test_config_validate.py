"""`yokeflow config validate`: every problem in one run, even when the settings keep Django from starting."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from apps.core.errors import ValidationError, exit_code
from tests.core.test_configuration_docs import variables_read
from tests.orchestration.cluster import database_url
from yokeflow import settings as base

ROOT = Path(__file__).resolve().parents[2]
INVALID = exit_code(ValidationError(""))
UNREACHABLE = "postgres://nobody@127.0.0.1:1/none"


@pytest.fixture
def environment(tmp_path) -> dict[str, str]:
    """This process's environment without any YokeFlow setting, plus a sound production baseline."""
    ours = variables_read() | {"DJANGO_SETTINGS_MODULE", "YOKEFLOW_CONFIG_CHECK"}
    clean = {name: value for name, value in os.environ.items() if name not in ours}
    return {**clean, "DJANGO_SETTINGS_MODULE": "yokeflow.settings", "DEBUG": "0", "SECRET_KEY": "s3cret-for-tests",
            "ALLOWED_HOSTS": "yokeflow.example.com", "PROJECTS_ROOT": str(tmp_path / "projects")}


def test_collect_mode_records_each_problem_once_and_goes_on_with_the_default(monkeypatch):
    monkeypatch.setenv("YOKEFLOW_CONFIG_CHECK", "1")
    monkeypatch.setattr(base, "config_problems", [])
    monkeypatch.setenv("YF_X", "ten")
    monkeypatch.setenv("YF_DB", "postgres://u:hunter2@h:notaport/x")

    assert base.envint("YF_X", 7) == 7 and base.envint("YF_X", 7) == 7
    assert base.envdatabase("YF_DB", "sqlite://")["ENGINE"] == "django.db.backends.sqlite3"
    assert base.envsecret("YF_MISSING", required=True) is None

    assert [name for name, _ in base.config_problems] == ["YF_X", "YF_DB", "YF_MISSING"]
    assert base.config_problems[0][1] == "YF_X must be an integer, got 'ten'"
    assert "hunter2" not in base.config_problems[1][1] and "u:***@h" in base.config_problems[1][1]


def validate(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", "yokeflow", "config", "validate"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_a_bad_database_a_bad_port_and_no_key_are_all_reported_in_one_run(environment):
    result = validate({**environment, "DATABASE_URL": UNREACHABLE, "EMAIL_HOST": "smtp.example.com",
                       "EMAIL_PORT": "abc"})

    lines = result.stdout.splitlines()
    assert result.returncode == INVALID, result.stderr
    assert "error: EMAIL_PORT must be an integer, got 'abc'" in lines
    assert any(line.startswith("error: DATABASE_URL: cannot connect to the postgresql database "
                               "nobody@127.0.0.1:1/none") for line in lines), lines
    assert "warning: ANTHROPIC_API_KEY is not set: the offline replay model will be used" in lines
    assert len(lines) == 3 and result.stderr.strip() == "configuration invalid: 2 errors, 1 warning"


def test_settings_that_keep_django_from_starting_are_reported_too(environment):
    broken = {**environment, "DATABASE_URL": "postgres://u:hunter2@h:notaport/x", "DEBUG": "maybe",
              "LOG_LEVEL": "LOUD", "ALLOWED_HOSTS": "", "SANDBOX": "none", "MODEL_HAIKU_BELOW": "0.9",
              "MODEL_OPUS_FROM": "0.5", "ENCRYPTION_KEYS": "not-a-fernet-key"}
    del broken["SECRET_KEY"]
    assert "ImproperlyConfigured" in _start(broken).stderr  # Django itself would not start

    result = validate(broken)

    output = result.stdout
    assert result.returncode == INVALID
    for problem in ("DATABASE_URL is not a valid database URL", "DEBUG must be a boolean", "SECRET_KEY is not set",
                    "LOG_LEVEL: 'LOUD' is not one of", "ALLOWED_HOSTS is empty", "SANDBOX: 'none' is not one of jail",
                    "need 0 <= MODEL_HAIKU_BELOW <= MODEL_OPUS_FROM <= 1",
                    "ENCRYPTION_KEYS: a key is not a Fernet key"):
        assert problem in output
    assert "hunter2" not in output and "not-a-fernet-key" not in output  # values of secrets are never printed
    assert all(line.startswith(("error: ", "warning: ")) for line in output.splitlines())


def _start(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.mark.django_db
def test_a_sound_environment_passes(environment, tmp_path):
    # PostgreSQL: the migrated test database; SQLite: a new file (its pending migrations are only a warning).
    url = database_url() if connection.vendor == "postgresql" else f"sqlite:///{tmp_path / 'db.sqlite3'}"

    result = validate({**environment, "DATABASE_URL": url})

    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning: ANTHROPIC_API_KEY is not set: the offline replay model will be used" in result.stdout
    assert result.stdout.splitlines()[-1].startswith("configuration OK (")
    assert "error:" not in result.stdout


def test_the_management_command_runs_the_same_check(environment, tmp_path, monkeypatch):
    for name, value in {**environment, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
                        "LLM_PROVIDER": "replay"}.items():
        monkeypatch.setenv(name, value)
    out = io.StringIO()

    call_command("yokeflow", "config", "validate", stdout=out)

    assert out.getvalue().splitlines()[-1].startswith("configuration OK")
    monkeypatch.setenv("PROJECTS_ROOT", str(Path(__file__)))  # a file, not a directory
    with pytest.raises(CommandError) as refused:
        call_command("yokeflow", "config", "validate", stdout=io.StringIO())
    assert refused.value.returncode == INVALID and "1 error" in str(refused.value)
