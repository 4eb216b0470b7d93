"""The expertise pages: every domain's file (version, size, validation), one domain's content and history, and
hand edits, validations and scans from the page. Files are made and changed through the real services."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from apps.learning.lessons import learn_from_session
from apps.learning.models import ExpertiseFile, ExpertiseUpdate
from apps.learning.services import expertise_edit, expertise_file
from apps.orchestration.repository import repo_ensure
from tests.learning.test_expertise import fixed_import_session, make_task

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC)


def dated(days: int) -> str:
    return (NOW - timedelta(days=days)).isoformat()


def content(*techniques: str) -> dict:
    return {"failures": [], "patterns": [], "core_files": [],
            "techniques": [{"text": text, "at": dated(1)} for text in techniques]}


def url(project, domain: str = "", suffix: str = "") -> str:
    return f"/projects/{project.slug}/expertise/" + (f"{domain}/{suffix}" if domain else "")


@pytest.fixture
def database(project, owner) -> ExpertiseFile:
    """The database file at version 1, written by hand."""
    file = expertise_file(project=project, domain="database")
    expertise_edit(expertise=file, content=content("Index the foreign keys"), author=owner, summary="first notes")
    return file


def edit(client, project, domain: str, text: str, summary: str = "", action: str = "edit"):
    return client.post(url(project, domain, "edit"), {"action": action, "content": text, "summary": summary})


# --- the list --------------------------------------------------------------------------------------------------

def test_the_list_shows_each_files_version_size_and_validation(client, project, owner, database):
    repo_ensure(project)
    api = expertise_file(project=project, domain="api")
    expertise_edit(expertise=api, content=content("Return 422", "Paginate lists"), author=owner)
    expertise_edit(expertise=api, content=content("Return 422 for bad input"), author=owner, summary="reworded")
    client.force_login(owner)
    assert client.post(url(project, "api", "edit"), {"action": "validate"}).status_code == 302

    response = client.get(url(project))

    assert response.status_code == 200
    page = response.text
    assert '<h1>Todo service: expertise</h1>' in page and 'aria-current="page">Expertise' in page
    assert "css/expertise.css" in page
    rows = {domain: page.split(f">{domain}</a></th>")[1].split("</tr>")[0] for domain in ("api", "database")}
    assert "v1" in rows["database"] and "never validated" in rows["database"] and "first notes" in rows["database"]
    assert f"{database.line_count} / 1000 lines" in rows["database"]
    assert "v2" in rows["api"] and "validated 0\xa0minutes ago" in rows["api"]
    assert "validated: nothing stale" in rows["api"]  # the last change is the validation
    missing = page.split("Domains without a file yet")[1]
    assert all(f">{domain}</a>" in missing for domain in ("frontend", "testing", "security", "deployment", "general"))
    assert ">database</a>" not in missing


def test_a_project_without_expertise_lists_every_domain_as_missing(client, project, owner):
    client.force_login(owner)

    page = client.get(url(project)).text

    assert "No expertise yet" in page and "Domains without a file yet <small>(7)</small>" in page
    assert not ExpertiseFile.objects.exists()  # reading creates nothing


# --- one domain ------------------------------------------------------------------------------------------------

def test_the_domain_page_shows_the_content_history_and_edit_form(client, planned_project, owner, database):
    task = make_task(planned_project, title="Fix the store", domain="database")
    session = fixed_import_session(planned_project, task)
    learn_from_session(session=session)
    client.force_login(owner)

    response = client.get(url(planned_project, "database"))

    assert response.status_code == 200
    page = response.text
    assert "<h1>Todo service: database expertise</h1>" in page and "version 2" in page
    assert "<h3>Techniques that worked" in page and "Index the foreign keys" in page
    assert "<h3>Failures and their fixes" in page and "No module named" in page
    history = page.split("Learning history")[1]
    assert history.index(">learned<") < history.index(">edited<")  # newest first
    assert f'href="/sessions/{session.pk}/">session #{session.pk}</a>' in history
    assert "first notes" in history and "olivia" in history and "<details><summary>Diff</summary>" in history
    assert '<textarea id="expertise-content" name="content"' in page
    assert '<label for="expertise-content">' in page and '<label for="expertise-summary">' in page
    assert "&quot;text&quot;: &quot;Index the foreign keys&quot;" in page  # pretty JSON, escaped
    assert 'value="validate"' in page and 'value="improve"' in page


def test_a_domain_without_a_file_shows_an_empty_page_and_creates_nothing(client, project, owner):
    client.force_login(owner)

    page = client.get(url(project, "frontend")).text

    assert "no file yet" in page and "Nothing learned for frontend yet" in page and "No changes recorded" in page
    assert not ExpertiseFile.objects.exists()


def test_an_unknown_domain_or_invisible_project_is_404(client, project, owner, outsider, database):
    client.force_login(owner)
    assert client.get(url(project, "cooking")).status_code == 404
    assert edit(client, project, "cooking", json.dumps(content())).status_code == 404

    client.force_login(outsider)
    assert client.get(url(project)).status_code == 404
    assert client.get(url(project, "database")).status_code == 404
    assert edit(client, project, "database", json.dumps(content("x"))).status_code == 404
    assert ExpertiseFile.objects.get().version == 1


def test_anonymous_users_are_sent_to_login(client, project, database):
    for response in (client.get(url(project)), client.get(url(project, "database")),
                     edit(client, project, "database", json.dumps(content("x")))):
        assert response.status_code == 302 and response["Location"].startswith("/login/?next=")
    assert ExpertiseFile.objects.get().version == 1


# --- editing ---------------------------------------------------------------------------------------------------

def test_an_edit_saves_a_new_version_with_an_edited_entry(client, project, owner, database):
    client.force_login(owner)
    new = content("Index the foreign keys", "Use select_for_update for counters")

    response = edit(client, project, "database", json.dumps(new), summary="added a locking note")

    assert response.status_code == 302 and response["Location"] == url(project, "database")
    database.refresh_from_db()
    assert database.version == 2 and len(database.content["techniques"]) == 2
    update = ExpertiseUpdate.objects.order_by("-id").first()
    assert (update.change_type, update.summary, update.author, update.version) == (
        "edited", "added a locking note", owner, 2)
    page = client.get(response["Location"]).text
    assert "Saved database expertise as version 2" in page and "version 2" in page
    assert "Use select_for_update for counters" in page and "added a locking note" in page


def test_a_first_edit_creates_the_file_with_the_default_summary(client, project, owner):
    client.force_login(owner)

    response = edit(client, project, "testing", json.dumps(content("Run pytest -x first")))

    assert response.status_code == 302
    file = ExpertiseFile.objects.get(project=project, domain="testing")
    assert file.version == 1 and file.updates.get().summary == "edited by hand"


def test_invalid_json_is_refused_with_the_text_kept(client, project, owner, database):
    client.force_login(owner)
    typed = '{"failures": [], "techniques": [oops'

    response = edit(client, project, "database", typed, summary="my try")

    assert response.status_code == 422
    page = response.text
    assert "content: not valid JSON: line 1, column 33: Expecting value" in page and 'role="alert"' in page
    assert "{&quot;failures&quot;: [], &quot;techniques&quot;: [oops</textarea>" in page
    assert 'value="my try"' in page and 'aria-invalid="true"' in page
    database.refresh_from_db()
    assert database.version == 1 and database.updates.count() == 1


@pytest.mark.parametrize(("text", "field"), [
    (json.dumps({**content(), "failures": [{"command": "pytest", "fix": "", "at": dated(1)}]}), "failures[0].error"),
    (json.dumps({**content(), "techniques": [{"text": "no date"}]}), "techniques[0].at"),
    (json.dumps({**content(), "recipes": []}), "recipes"),
    (json.dumps({"failures": []}), "patterns"),
    (json.dumps(["not", "an", "object"]), "content"),
    ('{"failures": [], "patterns": [], "core_files": [], "techniques": [{"text": "x", "at": NaN}]}', "content"),
    (json.dumps({**content(), "techniques": [{"text": "nul \x00 inside", "at": dated(1)}]}), "content"),
])
def test_bad_content_is_refused_naming_the_field_and_nothing_is_written(client, project, owner, text, field):
    client.force_login(owner)

    response = edit(client, project, "security", text)

    assert response.status_code == 422, response.text[:500]
    assert f"<code>{field}</code>" in response.text
    assert not ExpertiseFile.objects.exists()  # the file made to hold the edit was rolled back with it


def test_a_summary_with_a_nul_character_is_refused(client, project, owner, database):
    client.force_login(owner)

    response = edit(client, project, "database", json.dumps(content("y")), summary="bad\x00summary")

    assert response.status_code == 422 and "<code>summary</code>" in response.text
    database.refresh_from_db()
    assert database.version == 1


def test_a_viewer_sees_no_form_and_cannot_edit(client, project, viewer, database):
    client.force_login(viewer)

    page = client.get(url(project, "database")).text
    response = edit(client, project, "database", json.dumps(content("viewer was here")))

    assert "read only" in page and 'name="content"' not in page and 'value="validate"' not in page
    assert response.status_code == 403
    assert "you may not run or change its work" in response.text and 'name="content"' not in response.text
    database.refresh_from_db()
    assert database.version == 1 and database.updates.count() == 1


# --- validation, scans, unknown actions -------------------------------------------------------------------------

def test_validate_and_scan_need_a_repository(client, project, owner, database):
    client.force_login(owner)

    for action in ("validate", "improve"):
        response = client.post(url(project, "database", "edit"), {"action": action})
        assert response.status_code == 422 and "has no repository with commits" in response.text

    database.refresh_from_db()
    assert database.validated_at is None and database.updates.count() == 1


def test_validate_and_scan_record_their_history(client, project, owner, database):
    repo_ensure(project)
    client.force_login(owner)

    validated = client.post(url(project, "database", "edit"), {"action": "validate"})
    scanned = client.post(url(project, "database", "edit"), {"action": "improve"}, follow=True)

    assert validated.status_code == 302 and scanned.status_code == 200
    assert "Repository scan for database: scanned 1 files: added 0" in scanned.text
    assert [u.change_type for u in database.updates.order_by("id")] == ["edited", "validated", "improved"]
    database.refresh_from_db()
    assert database.validated_at is not None
    assert ">validated<" in scanned.text and ">improved<" in scanned.text


def test_an_unknown_action_is_refused(client, project, owner, database):
    client.force_login(owner)

    response = client.post(url(project, "database", "edit"), {"action": "delete"})

    assert response.status_code == 422
    assert "action: delete is unknown; expected edit, validate, improve" in response.text
    assert database.updates.count() == 1


def test_the_edit_url_only_accepts_posts(client, project, owner, database):
    client.force_login(owner)
    assert client.get(url(project, "database", "edit")).status_code == 405
