"""The login form and the interventions page in a real Chromium: the resume dialog by keyboard (and its no-script
fallback), polling that waits for an open dialog, approving budget, a phone-width layout and visible keyboard focus.
Pauses are real ones, made through the services; resuming queues a job that no worker runs here, which is enough:
the assertions are on the pause and session rows."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from apps.agents.models import AgentSession
from apps.interventions.models import PausedSession
from tests.dashboard.test_interventions_page import budget_pause_open

# Transactional: the live server runs in another thread and must see the rows the test writes (and vice versa).
# serialized_rollback: the flush after a transactional test would otherwise recreate the content types under new
# ids, and the later tests that restore the serialized database (tests/orchestration) would then collide with them.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


PAGE = "/interventions/"


@pytest.fixture
def budget_pause(coding_session) -> PausedSession:
    return budget_pause_open(coding_session)


def resume_button(page: Page, pause: PausedSession) -> Locator:
    return page.locator(f"#pause-{pause.pk}").get_by_role("button", name=f"Resume session #{pause.session_id}…")


def focus_is_in_open_dialog(page: Page) -> bool:
    return page.evaluate("() => document.activeElement?.closest('dialog[open]') != null")


def test_logging_in_refuses_a_wrong_password_then_lands_on_the_projects(page, live_server, owner, screenshot):
    page.goto("/login/")
    page.get_by_label("Username").fill("olivia")
    page.get_by_label("Password").fill("not-her-password")
    page.get_by_role("button", name="Log in").click()

    expect(page.locator(".error")).to_contain_text("didn't match")
    expect(page).to_have_url(re.compile(r"/login/$"))
    screenshot(page, "login")

    page.get_by_label("Password").fill("pw-olivia")
    page.get_by_role("button", name="Log in").click()

    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.locator(".topbar .who")).to_have_text("olivia")
    assert any(cookie["name"] == "sessionid" for cookie in page.context.cookies())  # a real login session


def test_resuming_through_the_dialog_by_keyboard(page, logged_in, screenshot, tab_to, owner, pause):
    logged_in(page, owner)
    page.goto(PAGE)
    card = page.locator(f"#pause-{pause.pk}")
    expect(card).to_contain_text("`pytest -q` failed 2 times the same way")
    screenshot(page, "interventions")
    button = resume_button(page, pause)
    dialog = page.get_by_role("dialog", name=f"Resume session #{pause.session_id}")

    tab_to(page, button)
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    assert focus_is_in_open_dialog(page)
    page.keyboard.press("Escape")  # closes, and the focus is back where the user left it
    expect(dialog).to_be_hidden()
    expect(button).to_be_focused()
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(button).to_be_focused()

    page.keyboard.press("Enter")
    assert focus_is_in_open_dialog(page)
    dialog.get_by_label("Resolved by").fill("olivia")
    dialog.get_by_label("Notes").fill("I installed the module.")
    screenshot(page, "interventions-dialog")
    dialog.get_by_role("button", name="Resume", exact=True).click()

    expect(page.get_by_role("status")).to_contain_text(f"Session #{pause.session_id} continues")
    expect(card).to_have_count(0)
    expect(page.locator("#pauses")).to_contain_text("No session is waiting for a person.")
    pause.refresh_from_db()
    assert pause.resolved and pause.resolved_by == "olivia" and pause.resolution_notes == "I installed the module."
    assert pause.session.status == AgentSession.Status.QUEUED  # queued for a worker: the session continues


def test_without_javascript_a_link_shows_the_resume_form_in_place(new_page, logged_in, owner, pause):
    page = new_page(java_script_enabled=False)
    logged_in(page, owner)
    page.goto(PAGE)
    card = page.locator(f"#pause-{pause.pk}")
    expect(resume_button(page, pause)).to_be_hidden()

    card.get_by_role("link", name=f"Resume session #{pause.session_id}…").click()
    form = page.locator(f"#resume-{pause.pk}")
    expect(form).to_be_visible()
    expect(form.get_by_role("button", name="Cancel")).to_be_hidden()  # nothing to close without a script
    form.get_by_label("Notes").fill("done by hand")
    form.get_by_role("button", name="Resume", exact=True).click()

    expect(page.get_by_role("status")).to_contain_text(f"Session #{pause.session_id} continues")
    assert PausedSession.objects.get(pk=pause.pk).resolution_notes == "done by hand"


def test_polling_waits_while_a_dialog_is_open(page, logged_in, owner, pause):
    """The list refreshes every 5 s by htmx, but never under an open dialog (the form would be destroyed)."""
    logged_in(page, owner)
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url) if request.headers.get("hx-request") else None)
    page.clock.install()  # fake timers: the 5 s ticks happen when the test says, not after real waiting
    page.goto(PAGE)
    with page.expect_response(lambda response: response.request.headers.get("hx-request") == "true"):
        page.clock.run_for(5_100)
    page.evaluate("() => 0")  # the poll's answer is swapped in before the dialog opens, not under it
    expect(page.locator(f"#pause-{pause.pk}")).to_be_visible()

    resume_button(page, pause).click()
    dialog = page.get_by_role("dialog", name=f"Resume session #{pause.session_id}")
    dialog.get_by_label("Notes").fill("half-written")
    before = len(polls)
    page.clock.run_for(30_000)
    page.evaluate("() => 0")  # a round trip, so a request the ticks started has been reported by now

    assert len(polls) == before
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Notes")).to_have_value("half-written")
    page.keyboard.press("Escape")
    with page.expect_request(lambda request: request.headers.get("hx-request") == "true"):
        page.clock.run_for(5_100)  # closed: polling resumes


def test_a_refused_resume_reopens_the_dialog_with_the_reason(page, logged_in, owner, pause):
    logged_in(page, owner)
    page.goto(PAGE)
    resume_button(page, pause).click()
    dialog = page.get_by_role("dialog", name=f"Resume session #{pause.session_id}")
    dialog.get_by_label("Resolved by").fill("  ")  # passes `required`, refused by the server
    dialog.get_by_label("Notes").fill("my long explanation")
    dialog.get_by_role("button", name="Resume", exact=True).click()

    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("say who resolves the pause")
    expect(dialog.get_by_label("Notes")).to_have_value("my long explanation")
    assert page.evaluate(f"() => document.getElementById('resume-{pause.pk}').matches(':modal')")
    assert not PausedSession.objects.get(pk=pause.pk).resolved


def test_approving_more_budget_refuses_a_bad_amount_then_raises_it(page, logged_in, owner, budget_pause):
    project = budget_pause.project
    logged_in(page, owner)
    page.goto(PAGE)
    card = page.locator(f"#pause-{budget_pause.pk}")
    amount = card.get_by_label(re.compile(r"^Approve more budget for Todo service"))
    expect(amount).to_have_value("2")

    amount.fill("abc")
    card.get_by_role("button", name="Approve and resume").click()

    expect(page.get_by_role("alert")).to_contain_text("between 0.01 and 100000")
    expect(amount).to_have_value("abc")
    expect(amount).to_have_attribute("aria-invalid", "true")
    project.refresh_from_db()
    assert project.budget_usd == 1 and not PausedSession.objects.get(pk=budget_pause.pk).resolved

    amount.fill("2")
    card.get_by_role("button", name="Approve and resume").click()

    expect(page.get_by_role("status")).to_contain_text("Budget of Todo service raised to $3.00")
    expect(card).to_have_count(0)
    project.refresh_from_db()
    budget_pause.refresh_from_db()
    assert project.budget_usd == 3
    assert budget_pause.resolved and budget_pause.resolved_by == "olivia"


def test_the_page_fits_a_phone(phone, logged_in, screenshot, owner, pause):
    logged_in(phone, owner)
    phone.goto(PAGE)
    button = resume_button(phone, pause)

    expect(button).to_be_visible()
    assert phone.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
    screenshot(phone, "interventions-phone")

    button.click()  # the dialog fits the screen too
    dialog = phone.get_by_role("dialog", name=f"Resume session #{pause.session_id}")
    expect(dialog).to_be_in_viewport(ratio=1)
    assert phone.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_keyboard_focus_is_always_visible(page, logged_in, owner, pause):
    logged_in(page, owner)
    page.goto(PAGE)
    resume_id = f"resume-{pause.pk}-open"

    # Every Tab stop from the top of the page down to the Resume button, then the dialog's own controls.
    seen = []
    for _ in range(40):
        page.keyboard.press("Tab")
        seen.append(page.evaluate("""() => {
            const element = document.activeElement;
            return {id: element.id, tag: element.tagName, outline: getComputedStyle(element).outlineStyle};
        }"""))
        if seen[-1]["id"] == resume_id:
            break
    assert seen[-1]["id"] == resume_id, f"the Resume button was not reached: {seen}"
    page.keyboard.press("Enter")
    for _ in range(3):  # from Resolved by (focused on open): Notes, Resume, Cancel
        page.keyboard.press("Tab")
        seen.append(page.evaluate("""() => ({id: document.activeElement.id, tag: document.activeElement.tagName,
                                              outline: getComputedStyle(document.activeElement).outlineStyle})"""))

    invisible = [stop for stop in seen if stop["outline"] == "none"]
    assert not invisible, f"focused without an outline: {invisible}"
    assert {"A", "BUTTON", "SELECT", "TEXTAREA"} <= {stop["tag"] for stop in seen}, seen
    assert seen[-3]["id"] == f"notes-{pause.pk}"  # the Tab stops after the button were the dialog's
