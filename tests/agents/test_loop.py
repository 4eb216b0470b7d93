"""The agent loop through the real anthropic SDK against the local fake Messages API."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from apps.agents.coding import coding_session_run
from apps.agents.loop_types import LoopConfig, Verdict
from apps.agents.models import AgentCost, AgentSession, Checkpoint
from apps.agents.services import session_request_cancel

pytestmark = pytest.mark.django_db

DONE = {"status": "done", "evidence": "hello.txt written; test -f passes"}


def _event_types(session: AgentSession) -> list[str]:
    return list(session.events.order_by("seq").values_list("type", flat=True))


def _assert_gapless(session: AgentSession) -> None:
    seqs = list(session.events.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    assert session.last_seq == len(seqs)


def _script_done(fake, *, thinking: str = "I will write the file first.") -> None:
    fake.tool_use("write_file", {"path": "hello.txt", "content": "hi\n"}, thinking=thinking,
                  usage={"input_tokens": 1000, "output_tokens": 200, "cache_creation_input_tokens": 1500})
    fake.tool_use("update_task_status", DONE, usage={"input_tokens": 300, "cache_read_input_tokens": 1500})
    fake.text("Done: hello.txt exists.")


def test_a_session_runs_tool_use_then_end_turn_and_records_everything(claude, coding_session):
    _script_done(claude)

    outcome = coding_session_run(session=coding_session)

    coding_session.refresh_from_db()
    assert outcome.completed and outcome.state["reported"]["status"] == "done"
    assert (Path(coding_session.workdir) / "hello.txt").read_text() == "hi\n"
    assert coding_session.status == "completed" and coding_session.turns == 3
    assert _event_types(coding_session) == [
        "session_start", "system", "user",
        "thinking", "tool_use", "llm_call", "tool_result",
        "tool_use", "llm_call", "tool_result",
        "text", "llm_call", "session_end",
    ]
    _assert_gapless(coding_session)
    assert coding_session.input_tokens == 1000 + 300 + 100
    assert coding_session.cache_write_tokens == 1500 and coding_session.cache_read_tokens == 1500
    assert AgentCost.objects.filter(session=coding_session).count() == 3
    assert coding_session.cost_usd == sum(c.cost_usd for c in coding_session.costs.all()) > 0
    assert coding_session.ended_at is not None and coding_session.duration_ms >= 0


def test_thinking_blocks_go_back_unchanged_and_the_stable_prefix_is_cached(claude, coding_session):
    _script_done(claude, thinking="secret reasoning")

    coding_session_run(session=coding_session)

    first, second = claude.requests[0], claude.requests[1]
    assistant = second["messages"][1]
    assert assistant["role"] == "assistant"
    assert assistant["content"][0]["type"] == "thinking"
    assert assistant["content"][0]["thinking"] == "secret reasoning"
    assert assistant["content"][0]["signature"]  # the fake refuses a changed or missing signature
    assert first["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert "cache_control" not in first["system"][0]
    assert second["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert all("tool_choice" not in request for request in claude.requests)
    assert {tool["name"] for tool in first["tools"]} >= {"read_file", "write_file", "edit_file", "run_command",
                                                          "get_task", "update_task_status", "request_help"}


def test_a_429_is_retried_by_the_sdk_and_the_session_goes_on(claude, coding_session):
    claude.error(429, retry_after=0.01)
    _script_done(claude)

    outcome = coding_session_run(session=coding_session)

    assert outcome.completed
    assert len(claude.requests) == 4  # the refused call, then three turns


def test_repeated_529s_fail_the_session_with_the_reason_and_its_metrics(claude, coding_session):
    claude.tool_use("write_file", {"path": "hello.txt", "content": "hi\n"}, usage={"input_tokens": 800})
    for _ in range(3):  # the first attempt and the SDK's two retries
        claude.error(529, retry_after=0.01)

    outcome = coding_session_run(session=coding_session)

    coding_session.refresh_from_db()
    assert outcome.status == "failed" and outcome.reason == "overloaded"
    assert coding_session.status == "failed" and coding_session.stop_reason == "overloaded"
    assert "529" in coding_session.error and "Anthropic API" in coding_session.error
    assert coding_session.turns == 1 and coding_session.input_tokens == 800
    assert coding_session.ended_at is not None and coding_session.duration_ms is not None
    assert _event_types(coding_session)[-2:] == ["llm_error", "session_end"]
    _assert_gapless(coding_session)


def test_a_bad_api_key_fails_at_once_without_retries(claude, coding_session):
    claude.error(401, message="invalid x-api-key")

    outcome = coding_session_run(session=coding_session)

    assert outcome.status == "failed" and outcome.reason == "provider_auth"
    assert len(claude.requests) == 1


def test_ending_without_reporting_done_is_reasked_then_fails(claude, coding_session):
    for _ in range(3):
        claude.text("I think it is fine.")

    outcome = coding_session_run(session=coding_session)

    assert outcome.status == "failed" and outcome.reason == "not_finished"
    asks = [m for m in claude.requests[1]["messages"] if m["role"] == "user"]
    assert "update_task_status" in str(asks[-1]["content"])


def test_tool_errors_go_back_to_the_model_and_do_not_end_the_session(claude, coding_session):
    claude.tool_use("read_file", {"path": "../../etc/passwd"})
    claude.tool_use("run_command", {"command": "sudo rm -rf /"})
    _script_done(claude)

    outcome = coding_session_run(session=coding_session)

    assert outcome.completed
    results = [e.payload for e in coding_session.events.filter(type="tool_result").order_by("seq")]
    assert results[0]["is_error"] and "outside the worktree" in results[0]["content"]
    assert results[1]["is_error"] and "refused" in results[1]["content"].lower()


def test_asking_for_help_pauses_the_session_with_a_checkpoint(claude, coding_session):
    claude.tool_use("request_help", {"reason": "the database password is missing"})

    outcome = coding_session_run(session=coding_session)

    coding_session.refresh_from_db()
    assert outcome.status == "paused" and outcome.reason == "help_requested"
    assert coding_session.status == "paused" and "password" in coding_session.error
    checkpoint = Checkpoint.objects.get(session=coding_session)
    assert checkpoint.turn == 1 and checkpoint.messages[-1]["content"][0]["type"] == "tool_result"


def test_a_guard_verdict_pauses_the_session(claude, coding_session):
    claude.tool_use("run_command", {"command": "exit 3"})

    def failing_commands(phase, state):
        if phase == "after_tools" and any(call.is_error or "exit code 3" in call.content for call in state.last_calls):
            return Verdict("pause", "retry_loop", "the same command keeps failing")
        return None

    outcome = coding_session_run(session=coding_session, guards=[failing_commands])

    assert outcome.status == "paused" and outcome.reason == "retry_loop"
    assert coding_session.events.filter(type="guard").exists()


def test_a_budget_guard_sees_the_next_request_and_pauses_before_it_is_sent(claude, coding_session):
    from apps.interventions.detectors import BudgetGuard

    project = coding_session.project
    project.budget_usd = Decimal("1.00")
    project.save()
    claude.tool_use("write_file", {"path": "a.txt", "content": "a"}, usage={"input_tokens": 300_000})  # $0.60
    claude.text("never reached")

    outcome = coding_session_run(session=coding_session, guards=[BudgetGuard(project.pk)])

    assert outcome.status == "paused" and outcome.reason == "budget"
    assert len(claude.requests) == 1  # the second call's worst case ($0.75 of prompt alone) did not fit
    assert Decimal(outcome.details["next_call_worst_usd"]) > Decimal("0.40")


def test_the_turn_cap_pauses_the_session(claude, coding_session):
    for i in range(3):
        claude.tool_use("write_file", {"path": f"f{i}.txt", "content": "x"})

    outcome = coding_session_run(session=coding_session, config=LoopConfig(max_turns=2))

    coding_session.refresh_from_db()
    assert outcome.status == "paused" and outcome.reason == "turn_cap" and coding_session.turns == 2
    assert outcome.details == {"turns": 2, "turn_cap": 2}


def test_a_cancel_request_stops_the_session_at_the_next_step(claude, coding_session):
    claude.tool_use("write_file", {"path": "a.txt", "content": "a"})
    claude.text("never reached")

    def cancel_after_first_turn(event, state):
        if event == "turn":
            session_request_cancel(session=state.session)

    outcome = coding_session_run(session=coding_session, hooks=[cancel_after_first_turn])

    coding_session.refresh_from_db()
    assert outcome.status == "cancelled" and coding_session.status == "cancelled"
    assert len(claude.requests) == 1


class WorkerDied(BaseException):
    """Stands in for a killed worker: not an Exception, so the loop cannot tidy up after it."""


def die_after_first_turn(event, state):
    if event == "turn" and state.turn == 1:
        raise WorkerDied


def test_a_crashed_session_continues_from_its_checkpoint_with_gapless_events(claude, coding_session):
    claude.tool_use("write_file", {"path": "hello.txt", "content": "hi\n"})
    claude.tool_use("update_task_status", DONE)
    claude.text("Done.")

    with pytest.raises(WorkerDied):
        coding_session_run(session=coding_session, hooks=[die_after_first_turn])
    coding_session.refresh_from_db()
    assert coding_session.status == "running"  # nobody marked it: the worker is gone

    outcome = coding_session_run(session=coding_session, force=True, resume_message="Carry on, please.")

    coding_session.refresh_from_db()
    assert outcome.completed and coding_session.attempts == 2
    resumed = claude.requests[1]["messages"]  # the checkpointed conversation, then the resume message
    assert [m["role"] for m in resumed] == ["user", "assistant", "user"]
    assert resumed[1]["content"][0]["name"] == "write_file"
    assert resumed[2]["content"][0]["type"] == "tool_result"
    assert resumed[2]["content"][-1]["text"] == "Carry on, please."
    types = _event_types(coding_session)
    assert types.count("session_start") == 1 and "resume" in types
    _assert_gapless(coding_session)


def test_a_live_lease_refuses_a_second_worker(claude, coding_session):
    from apps.agents.services import session_claim
    from apps.core.errors import ConflictError

    session_claim(session=coding_session, owner="host-a:1")
    with pytest.raises(ConflictError, match="running on host-a:1"):
        session_claim(session=coding_session, owner="host-b:2")


def test_a_task_reported_done_before_a_crash_stays_reported_after_it(claude, coding_session):
    claude.tool_use("update_task_status", DONE)
    claude.text("Done.")

    with pytest.raises(WorkerDied):
        coding_session_run(session=coding_session, hooks=[die_after_first_turn])
    outcome = coding_session_run(session=coding_session, force=True)

    assert outcome.completed and outcome.state["reported"] == DONE


def test_nul_bytes_in_command_output_are_kept_readable_not_fatal(claude, coding_session):
    claude.tool_use("run_command", {"command": "printf 'a\\0b'"})
    _script_done(claude)

    outcome = coding_session_run(session=coding_session)

    assert outcome.completed
    result = coding_session.events.filter(type="tool_result").order_by("seq").first()
    assert "a\ufffdb" in result.payload["content"]


def test_a_worker_that_lost_its_lease_does_not_run_the_tools_of_the_reply(claude, coding_session):
    from apps.agents.models import AgentSession as Session

    claude.tool_use("write_file", {"path": "stale.txt", "content": "x"})

    def steal(phase, state):
        Session.objects.filter(pk=state.session.pk).update(lease_owner="other-host:9")
        return None

    outcome = coding_session_run(session=coding_session, guards=[steal])

    coding_session.refresh_from_db()
    assert outcome.reason == "lease_lost" and coding_session.status == "running"
    assert not (Path(coding_session.workdir) / "stale.txt").exists()


def test_a_turn_cut_off_during_its_tools_runs_only_the_missing_calls_and_never_asks_again(claude, coding_session):
    """The state a kill leaves between two tool calls of one turn: the reply and the first result are recorded (in
    the checkpoint and the transcript); the second command never ran."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.agents.services import checkpoint_save, events_append

    workdir = Path(coding_session.workdir)
    (workdir / "ran.log").write_text("one\n")  # the first command ran before the kill
    reply = [{"type": "tool_use", "id": "toolu_a", "name": "run_command", "input": {"command": "echo one >> ran.log"}},
             {"type": "tool_use", "id": "toolu_b", "name": "run_command", "input": {"command": "echo two >> ran.log"}}]
    first = {"type": "tool_result", "tool_use_id": "toolu_a", "content": "exit code 0", "is_error": False}
    events_append(session=coding_session, events=[("user", {"text": "opening"}), ("tool_result", {
        "tool_use_id": "toolu_a", "name": "run_command", "is_error": False, "content": "exit code 0"})])
    checkpoint_save(session=coding_session, turn=1, messages=[{"role": "user", "content": "do it"},
                                                              {"role": "assistant", "content": reply}],
                    step={"turn": 1, "stop_reason": "tool_use", "reasks": 0, "state": {},
                          "pending": {"results": [first]}})
    AgentSession.objects.filter(pk=coding_session.pk).update(
        status="running", started_at=timezone.now(), heartbeat_at=timezone.now() - timedelta(hours=1))
    claude.tool_use("write_file", {"path": "hello.txt", "content": "hi\n"})
    claude.tool_use("update_task_status", DONE)
    claude.text("Done.")

    outcome = coding_session_run(session=AgentSession.objects.get(pk=coding_session.pk))

    assert outcome.completed
    assert (workdir / "ran.log").read_text() == "one\ntwo\n"  # the recorded call did not run again
    first_request = claude.requests[0]["messages"]
    assert first_request[1]["content"] == reply  # the recorded reply, not a new call for turn 1
    results = first_request[2]["content"]
    assert [block.get("tool_use_id") for block in results[:2]] == ["toolu_a", "toolu_b"]
    assert results[0]["content"] == "exit code 0" and results[-1]["type"] == "text"  # then the resume note
    assert len(claude.requests) == 3 and AgentCost.objects.filter(session=coding_session).count() == 3
    note = coding_session.events.get(type="note").payload["text"]
    assert "run_command" in note and "may have done part of its work" in note
    _assert_gapless(AgentSession.objects.get(pk=coding_session.pk))
