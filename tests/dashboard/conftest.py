"""Fixtures for the pages: the agent and run fixtures (fake Claude, generated replay projects)."""

from __future__ import annotations

from tests.orchestration.conftest import claude, coding_session, fake, replay_project, task  # noqa: F401
