"""`yokeflow plan / run / sessions / transcript / continue / cancel` from the command line."""

from __future__ import annotations

import pytest

from apps.agents.models import AgentSession
from tests.projects.test_cli import refused, yokeflow

pytestmark = pytest.mark.django_db


@pytest.fixture
def kvstore(settings, owner, tmp_path):
    settings.ANTHROPIC_API_KEY = None
    spec = tmp_path / "spec.md"
    spec.write_text("kvstore: a key-value store on the command line.")
    yokeflow("new", "kvstore", "--spec", str(spec), "--owner", owner.username)
    return "kvstore"


def test_plan_and_run_in_this_process_build_the_example(kvstore):
    planned = yokeflow("plan", kvstore, "--sync")
    assert "offline replay model" in planned and "no ANTHROPIC_API_KEY" in planned
    assert "planned kvstore: 2 epics, 6 tasks" in planned

    ran = yokeflow("run", kvstore, "--sync")

    assert "no worker involved" in ran and "[########################] 6/6 done" in ran
    assert "kvstore: completed · 6/6 tasks done · 13 commits · 7 sessions" in ran
    assert "estimate: the offline replay model charges nothing" in ran


def test_sessions_and_transcripts_show_what_happened(kvstore):
    yokeflow("plan", kvstore, "--sync")
    listing = yokeflow("sessions", kvstore)
    session = AgentSession.objects.get()
    assert f"#{session.pk}" in listing and "planning" in listing and "completed" in listing
    assert "standing in for claude-sonnet-5-5" in listing

    transcript = yokeflow("transcript", str(session.pk))
    assert "submit_plan" in transcript and "session_end" in transcript
    assert "model choice: planning sessions use DEFAULT_MODEL_TIER" in transcript
    tail = yokeflow("transcript", str(session.pk), "--after", str(session.last_seq - 1), "--json")
    assert tail.count("\n") == 2 and '"session_end"' in tail


def test_commands_refuse_bad_input_with_one_line(kvstore):
    assert "no plan yet" in str(refused("run", kvstore, "--sync"))
    assert "not found" in str(refused("transcript", "999999"))
    assert "not found" in str(refused("transcript", "../etc"))
    assert "not found" in str(refused("plan", "nope"))
    yokeflow("plan", kvstore, "--sync")
    session = AgentSession.objects.get()
    error = refused("continue", str(session.pk))
    assert "finished session cannot continue" in str(error) and error.returncode != 0
    assert "nothing to cancel" in str(refused("cancel", "--session", str(session.pk)))


def test_a_queued_session_is_cancelled_at_once(kvstore):
    yokeflow("plan", kvstore)  # queued for the workers; nobody runs it here
    session = AgentSession.objects.get()
    assert session.status == "queued"
    assert f"session #{session.pk} cancelled" in yokeflow("cancel", "--session", str(session.pk))
    session.refresh_from_db()
    assert session.status == "cancelled" and session.ended_at is not None


def test_models_names_the_provider_and_warns_about_deprecated_models(settings):
    shown = yokeflow("models")
    assert "offline replay model" in shown and "sonnet  claude-sonnet-5-5 (default)" in shown
    assert "claude-haiku-5-5" in shown and "prompts over 100,000 tokens: $0.5000 / $2.5000" in shown
    assert "WARNING" not in shown

    settings.MODEL_TIERS = {**settings.MODEL_TIERS, "sonnet": "claude-sonnet-4-5"}
    settings.ANTHROPIC_API_KEY = "sk-test"
    shown = yokeflow("models")
    assert "Claude through the Anthropic API" in shown
    assert "claude-sonnet-4-5 (default)  WARNING: deprecated by Anthropic, retires November 30th, 2026" in shown
