"""The detectors on their own: signatures, the retry tracker, the critical-error table, provider errors."""

from __future__ import annotations

import pytest

from apps.agents.loop_types import LoopState, ToolCall
from apps.agents.tools import ToolContext
from apps.core.errors import ProviderError
from apps.interventions.detectors import (
    CRITICAL_PATTERNS,
    CriticalErrors,
    RetryTracker,
    call_signature,
    command_signature,
)


def _state(*calls: ToolCall, turn: int = 1) -> LoopState:
    return LoopState(session=None, context=ToolContext(session=None, workdir=None), messages=[], turn=turn,
                     last_calls=list(calls))


def _run(command: str, output: str, *, ok: bool = False) -> ToolCall:
    return ToolCall("run_command", {"command": command}, f"exit code {0 if ok else 1} (0.1 s)\n{output}", not ok)


@pytest.mark.parametrize(("a", "b"), [
    ("pytest -q", "  pytest   -q  "),
    ("cd /work/x && pytest -q", "pytest -q"),
    ("pytest -q 2>&1", "pytest -q"),
    ("npm test; echo $?", "npm test"),
    ("python 'run.py'", 'python "run.py"'),
    ("cat /tmp/tmpa1b2c3/log", "cat /tmp/tmpzz99/log"),
])
def test_spellings_of_one_command_share_a_signature(a, b):
    assert command_signature(a) == command_signature(b)


def test_different_commands_keep_different_signatures():
    assert command_signature("pytest tests/test_a.py") != command_signature("pytest tests/test_b.py")
    assert call_signature(ToolCall("edit_file", {"path": "a.py", "old": "x"}, "", True)) != call_signature(
        ToolCall("edit_file", {"path": "b.py", "old": "x"}, "", True))


def test_the_second_identical_failure_pauses_with_the_stats():
    tracker = RetryTracker(max_retries=2)
    assert tracker("after_tools", _state(_run("pytest -q", "E   assert 1 == 2"))) is None
    verdict = tracker("after_tools", _state(_run("pytest  -q 2>&1", "E   assert 1 == 2"), turn=2))

    assert verdict.action == "pause" and verdict.kind == "retry_limit"
    assert verdict.details["retry_stats"]["pytest -q"]["count"] == 2
    assert "assert 1 == 2" in verdict.details["output_tail"]


def test_a_success_clears_the_count_and_other_phases_are_ignored():
    tracker = RetryTracker(max_retries=2)
    tracker("after_tools", _state(_run("make", "error")))
    tracker("after_tools", _state(_run("make", "built", ok=True)))
    assert tracker("before_call", _state(_run("make", "error"))) is None
    assert tracker("after_tools", _state(_run("make", "error"))) is None
    assert tracker.stats()["make"]["count"] == 1


SAMPLES = {
    "address_in_use": ("python -m http.server 8765", "OSError: [Errno 98] Address already in use"),
    "service_refused": ("pytest", 'psycopg.OperationalError: connection to server at "127.0.0.1", port 5432 '
                                  "failed: Connection refused"),
    "missing_module": ("python app.py", "ModuleNotFoundError: No module named 'requests'"),
    "permission_denied": ("touch /etc/x", "touch: cannot touch '/etc/x': Permission denied"),
    "disk_full": ("dd if=/dev/zero of=big", "dd: error writing 'big': No space left on device"),
    "out_of_memory": ("python hog.py", "MemoryError"),
    "jail_unavailable": ("pytest", "the command jail is unavailable: bubblewrap (bwrap) is not installed; install …"),
}


def test_every_pattern_of_the_table_has_a_sample():
    assert {pattern.name for pattern in CRITICAL_PATTERNS} == set(SAMPLES)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_each_critical_pattern_pauses_at_its_threshold(name):
    command, output = SAMPLES[name]
    pattern = next(p for p in CRITICAL_PATTERNS if p.name == name)
    detector = CriticalErrors()
    verdicts = [detector("after_tools", _state(_run(command, output))) for _ in range(pattern.threshold)]

    assert verdicts[:-1] == [None] * (pattern.threshold - 1)
    verdict = verdicts[-1]
    assert verdict.kind == "critical_error" and verdict.details["pattern"] == name
    assert verdict.details["can_auto_resume"] == bool(pattern.recovery)


def test_critical_details_carry_what_recovery_needs():
    detector = CriticalErrors()
    port = detector("after_tools", _state(_run(*SAMPLES["address_in_use"])))
    refused = detector("after_tools", _state(_run(*SAMPLES["service_refused"])))
    assert port.details["port"] == 8765 and port.details["recovery"] == "free_port"
    assert refused.details["port"] == 5432 and refused.details["recovery"] == "restart_service"
    detector("after_tools", _state(_run(*SAMPLES["missing_module"])))
    module = detector("after_tools", _state(_run(*SAMPLES["missing_module"])))
    assert module.details["module"] == "requests" and module.details["recovery"] == "pip_install"


def test_successful_output_and_one_missing_module_do_not_pause():
    detector = CriticalErrors()
    assert detector("after_tools", _state(_run("grep -r 'Address already in use' docs", "found", ok=True))) is None
    # Writing tests before the module is ordinary work: one missing module is not critical.
    assert detector("after_tools", _state(_run(*SAMPLES["missing_module"]))) is None


def test_a_refused_api_key_pauses_and_other_provider_errors_do_not():
    detector = CriticalErrors()
    state = _state()
    state.provider_error = ProviderError("Anthropic API: invalid x-api-key (HTTP 401)", code="provider_auth",
                                         details={"status": 401})
    verdict = detector("provider_error", state)
    assert verdict.kind == "critical_error" and verdict.details["pattern"] == "provider_auth"
    state.provider_error = ProviderError("bad request", code="provider_bad_request")
    assert detector("provider_error", state) is None
