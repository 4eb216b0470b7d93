"""Settings come from the environment and fail loudly, naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from yokeflow import settings as base

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("helper", "value", "message"),
    [
        (lambda: base.envint("YF_X", 1), "ten", "YF_X must be an integer, got 'ten'"),
        (lambda: base.envint("YF_X", 1, minimum=2), "1", "YF_X must be at least 2"),
        (lambda: base.envbool("YF_X"), "maybe", "YF_X must be a boolean"),
        (lambda: base.envurl("YF_X"), "localhost:9", r"YF_X must be an http\(s\) URL"),
        (lambda: base.envdatabase("YF_X", "sqlite://"), "nosuch://x", "YF_X"),
        (lambda: base.envsecret("YF_X", required=True), "", "YF_X is not set"),
    ],
)
def test_a_bad_value_names_the_variable(monkeypatch, helper, value, message):
    monkeypatch.setenv("YF_X", value)

    with pytest.raises(ImproperlyConfigured, match=message):
        helper()


def test_helpers_parse_good_values(monkeypatch):
    monkeypatch.setenv("YF_X", " a, b ,,c ")
    assert base.envlist("YF_X", []) == ["a", "b", "c"]
    monkeypatch.setenv("YF_X", "off")
    assert base.envbool("YF_X", True) is False
    monkeypatch.setenv("YF_X", "postgres://u@127.0.0.1:5432/db")
    assert base.envdatabase("YF_X", "sqlite://")["ENGINE"] == "django.db.backends.postgresql"


def _check(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "DJANGO_SETTINGS_MODULE"}}
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env={**clean, **env},
        capture_output=True, text=True, timeout=120,
    )


def test_production_start_refuses_a_missing_secret_key():
    result = _check({"DEBUG": "0"})

    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_development_start_uses_a_dev_secret_key():
    assert _check({"DEBUG": "1"}).returncode == 0
