"""The content security policy in a real Chromium: every page works under it — no script, style or request is
refused, no page error — including htmx polling, the dialogs, the dependency graph (mermaid) and the API docs."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_no_page_breaks_the_policy(page, logged_in, owner, planned_project, pause):
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text)
            if "Content Security Policy" in message.text or message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("response", lambda response: problems.append(f"{response.status} {response.url}")
            if response.status >= 400 and not response.url.endswith("/favicon.ico") else None)
    logged_in(page, owner)

    for url, ready in ((f"/projects/{planned_project.slug}/", "#progress"),
                       ("/interventions/", "#pauses"),
                       (f"/projects/{planned_project.slug}/graph/", "svg"),
                       ("/api/docs", ".swagger-ui")):
        response = page.goto(url)
        assert response is not None and "script-src 'self'" in response.headers["content-security-policy"]
        expect(page.locator(ready).first).to_be_visible()
        page.wait_for_timeout(300)  # late scripts and the first poll

    assert problems == []
