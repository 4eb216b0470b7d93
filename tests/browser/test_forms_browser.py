"""Refused forms in a real Chromium: the server's field errors show beside their fields (linked as the field's
accessible description, marked invalid), what the person typed stays in the form, and nothing is saved."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from apps.learning.models import ExpertiseFile

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_a_refused_expertise_edit_shows_each_field_error_beside_its_field(page, logged_in, owner, project):
    logged_in(page, owner)
    page.goto(f"/projects/{project.slug}/expertise/database/")
    page.get_by_text("Edit the content as JSON").click()
    content = page.get_by_label(re.compile(r"^Content"))
    summary = page.get_by_label(re.compile(r"^Summary of the change"))
    typed = '{"failures": [], "techniques": [oops'
    content.fill(typed)
    summary.fill("my first try")
    page.get_by_role("button", name="Save").click()

    expect(content).to_have_attribute("aria-invalid", "true")
    expect(content).to_have_accessible_description(re.compile(r"not valid JSON: line 1, column 33"))
    expect(content).to_have_value(typed)
    expect(summary).to_have_value("my first try")
    expect(summary).not_to_have_attribute("aria-invalid", "true")
    assert not ExpertiseFile.objects.filter(project=project, domain="database").exists()

    techniques = [{"text": "Index the foreign keys", "at": "2026-12-01T10:00:00+00:00"}]
    content.fill(json.dumps({"failures": [], "patterns": [], "core_files": [], "techniques": techniques}))
    page.get_by_role("button", name="Save").click()

    expect(page.get_by_role("status")).to_contain_text("Saved database expertise as version 1 (my first try)")
    assert ExpertiseFile.objects.get(project=project, domain="database").version == 1


def test_a_refused_resume_marks_the_name_field_and_keeps_the_notes(page, logged_in, owner, pause):
    logged_in(page, owner)
    page.goto("/interventions/")
    page.locator(f"#pause-{pause.pk}").get_by_role("button", name=f"Resume session #{pause.session_id}…").click()
    dialog = page.get_by_role("dialog", name=f"Resume session #{pause.session_id}")
    name = dialog.get_by_label("Resolved by")
    name.fill("   ")  # passes the browser's `required`, refused by the form
    dialog.get_by_label("Notes").fill("the module is installed now")
    dialog.get_by_role("button", name="Resume", exact=True).click()

    expect(name).to_have_attribute("aria-invalid", "true")
    expect(name).to_have_accessible_description("say who resolves the pause")
    expect(dialog.get_by_label("Notes")).to_have_value("the module is installed now")
    pause.refresh_from_db()
    assert not pause.resolved
