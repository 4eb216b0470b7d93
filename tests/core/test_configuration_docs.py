"""docs/configuration.md lists every environment variable settings.py reads, so the docs cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Every read goes through a helper: env("NAME", …), envint("NAME", …), envsecret("NAME", …), …
READ = re.compile(r"\benv[a-z]*\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']")


def variables_read() -> set[str]:
    return set(READ.findall((ROOT / "yokeflow" / "settings.py").read_text()))


def test_the_pattern_finds_the_settings_variables():
    found = variables_read()
    assert {"DEBUG", "SECRET_KEY", "DATABASE_URL", "DB_CONN_MAX_AGE", "EMAIL_PORT", "Q_POLL"} <= found
    assert len(found) > 60


def test_every_variable_is_documented():
    docs = (ROOT / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]*)`", docs))

    missing = sorted(variables_read() - documented)

    assert not missing, f"docs/configuration.md does not document: {', '.join(missing)}"
