"""The live dashboard in a real browser: a replay build started from the page runs on a real django-q2 cluster,
the swimlane cards change colour without a reload and all end done; the transcript opens from a card; the other
project pages render at desktop and phone widths. Screenshots for the README are saved on the way."""

from __future__ import annotations

import re
import time

import pytest
from django.conf import settings
from playwright.sync_api import Page, expect

from tests.orchestration.cluster import kill, start_cluster
from tests.orchestration.test_events import TWO_EPICS

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True, serialized_rollback=True)]
RUN_TIMEOUT_MS = 90_000


def _no_sideways_scroll(page: Page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


@pytest.fixture
def live_build(replay_project, settings, tmp_path):
    """A three-task replay project (each scripted turn takes 0.6 s) and a real worker cluster to run it."""
    settings.DASHBOARD_POLL_SECONDS = 0.5
    project = replay_project("live", TWO_EPICS, delay=0.6)
    cluster = start_cluster(tmp_path / "cluster.log", Q_WORKERS="2", LLM_PROVIDER="replay",
                            REPLAY_ROOT=str(settings.REPLAY_ROOT), ANTHROPIC_API_KEY="")
    yield project
    kill(cluster)


def test_a_build_started_from_the_page_updates_the_swimlanes_live_until_every_card_is_done(
        page, logged_in, screenshot, owner, live_build, tab_to):
    logged_in(page, owner)
    page.goto(f"/projects/{live_build.slug}/")
    expect(page.locator("#task-A")).to_have_attribute("data-status", "ready")
    page.evaluate("window.notReloaded = true")  # survives only if the page is never reloaded

    page.get_by_role("button", name="Start run").click()
    page.evaluate("window.notReloaded = true")  # the start posts and comes back once; from here on, no reload
    expect(page.locator("#task-A")).to_have_attribute("data-status", "running", timeout=RUN_TIMEOUT_MS)
    expect(page.locator("#progress .agents")).to_contain_text("A", timeout=RUN_TIMEOUT_MS)
    screenshot(page, "dashboard-running")
    for key in ("A", "B", "C"):
        expect(page.locator(f"#task-{key}")).to_have_attribute("data-status", "done", timeout=RUN_TIMEOUT_MS)
    expect(page.locator("#progress")).to_contain_text("3 of 3 tasks done", timeout=RUN_TIMEOUT_MS)

    assert page.evaluate("window.notReloaded") is True
    assert page.locator("#swimlanes svg.arrows path").count() >= 1  # the B-after-A arrow is drawn
    deadline = time.monotonic() + 30  # the last task's job cleans its worktree up, then ends the run
    while live_build.refresh_from_db() or (live_build.status == "running" and time.monotonic() < deadline):
        time.sleep(0.2)
    assert live_build.status == "completed"
    for region in ("#swimlanes", "#progress"):  # the 286 answers drew them without a poll: polling stopped
        expect(page.locator(region)).not_to_have_attribute("hx-trigger", re.compile("every"))
    screenshot(page, "dashboard")
    tab_to(page, page.locator("#task-A"))
    assert page.locator("#task-A").evaluate("e => getComputedStyle(e).outlineStyle") != "none"


def test_the_transcript_opens_from_a_card_and_shows_tool_calls_collapsed(
        page, logged_in, screenshot, owner, live_build):
    from apps.orchestration import lifecycle, runs

    settings.LLM_PROVIDER = "replay"
    runs.jobs_drain(lambda: lifecycle.run_start(project=live_build))
    logged_in(page, owner)
    page.goto(f"/projects/{live_build.slug}/")

    page.locator("#task-A").get_by_role("link", name="session").click()

    expect(page.get_by_role("heading", level=1)).to_contain_text("A")
    calls = page.locator("li.t-tool_use details")
    expect(calls.first).to_be_visible()
    expect(calls.first.locator("pre")).to_be_hidden()
    calls.first.locator("summary").click()
    expect(calls.first.locator("pre")).to_be_visible()
    expect(page.locator("#session-figures")).to_contain_text("Completed")
    session = live_build.sessions.get(task__key="A")
    assert page.url.endswith(f"/sessions/{session.pk}/")
    assert page.locator("li.t-tool_use").count() == session.events.filter(type="tool_use").count()
    screenshot(page, "session")
    for name in ("graph", "costs", "expertise", "worktrees"):
        page.goto(f"/projects/{live_build.slug}/{name}/")
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        screenshot(page, name)


def test_the_dashboard_reads_on_a_phone(phone, logged_in, screenshot, owner, live_build):
    logged_in(phone, owner)
    phone.goto(f"/projects/{live_build.slug}/")

    expect(phone.locator("#task-C")).to_be_visible()
    assert _no_sideways_scroll(phone)
    expect(phone.get_by_role("button", name="Start run")).to_be_visible()
    screenshot(phone, "dashboard-phone")
