"""The session time limit: a run of a session that goes past its project's `session_time_limit` pauses before
its next model call, as a `timeout` intervention; resuming starts the clock again; 0 means no limit."""

from __future__ import annotations

import time

import pytest

from apps.agents.loop_types import LoopState, Outcome
from apps.agents.tools import ToolContext
from apps.interventions.detectors import TimeLimit, guards_for
from apps.interventions.models import PausedSession
from apps.orchestration.runs import session_pause_record

pytestmark = pytest.mark.django_db


def state() -> LoopState:
    return LoopState(session=None, context=ToolContext(session=None, workdir=None), messages=[], turn=3)


def test_a_run_past_the_limit_pauses_before_the_next_call(project):
    guard = TimeLimit(project.pk)
    assert guard.minutes == 30 and guard("before_call", state()) is None

    guard.started = time.monotonic() - 31 * 60  # this run began 31 minutes ago
    verdict = guard("before_call", state())

    assert verdict.action == "pause" and verdict.kind == "timeout"
    assert "over the project's limit of 30 min" in verdict.reason and verdict.details["limit_minutes"] == 30
    assert guard("after_tools", state()) is None  # only ever before a model call


def test_no_limit_and_a_fresh_run_do_not_pause(project):
    project.session_time_limit = 0
    project.save()
    unlimited = TimeLimit(project.pk)
    unlimited.started -= 10 * 3600
    assert unlimited("before_call", state()) is None
    assert any(isinstance(guard, TimeLimit) for guard in guards_for(account="default", project_id=project.pk)[0])


def test_the_timeout_becomes_an_intervention_of_its_own_type(coding_session):
    outcome = Outcome(status="paused", reason="timeout", message="the session ran 31 min, over the limit",
                      details={"limit_minutes": 30})

    session_pause_record(session=coding_session, outcome=outcome)

    pause = PausedSession.objects.get(session=coding_session)
    assert pause.pause_type == "timeout" and pause.blocker_info["limit_minutes"] == 30
