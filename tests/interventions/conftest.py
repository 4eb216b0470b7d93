"""Fixtures for interventions: a paused coding session (through the real service) and the agent fixtures."""

from __future__ import annotations

import pytest

from apps.agents.models import AgentSession
from apps.agents.services import session_transition
from apps.interventions.models import PausedSession
from apps.interventions.services import pause_open
from tests.agents.conftest import claude, coding_session, fake, task  # noqa: F401 - shared fixtures
from tests.orchestration.conftest import replay_project  # noqa: F401 - shared fixture


@pytest.fixture
def pause(coding_session) -> PausedSession:  # noqa: F811 - the imported fixture
    """A coding session paused by the retry detector (the session row is paused too, as in a real run)."""
    session = session_transition(session=coding_session, status=AgentSession.Status.RUNNING, lease_owner="test")
    session = session_transition(session=session, status=AgentSession.Status.PAUSED, stop_reason="retry_limit",
                                 error="`pytest -q` failed 2 times the same way", owner="test")
    return pause_open(session=session, pause_type="retry_limit", reason="`pytest -q` failed 2 times the same way",
                      blocker_info={"command": "pytest -q", "output_tail": "E   AssertionError: 1 != 2"},
                      retry_stats={"pytest -q": {"count": 2, "command": "pytest -q", "last_error": "exit code 1"}})
