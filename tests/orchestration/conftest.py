from __future__ import annotations

from tests.agents.conftest import claude, coding_session, fake, task  # noqa: F401 - shared fixtures
