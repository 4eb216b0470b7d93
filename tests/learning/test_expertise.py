"""Expertise files: classification, learning from a session's tool calls, the line cap, validation against the
repository, scans, prompt excerpts and hand edits."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import git
import pytest

from apps.agents.services import events_append, session_create
from apps.core.errors import ValidationError
from apps.learning.domains import classify_domain
from apps.learning.expertise import enforce_line_limit, format_for_prompt, line_count, render_markdown
from apps.learning.lessons import learn_from_session
from apps.learning.models import ExpertiseFile, ExpertiseUpdate
from apps.learning.selectors import expertise_all, expertise_for_prompt, expertise_history, expertise_read
from apps.learning.services import expertise_edit, expertise_file, self_improve, validate_expertise
from apps.projects.models import AcceptanceTest, Task

pytestmark = pytest.mark.django_db

AUTHOR = git.Actor("Test", "test@example.com")
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
MODULE_MISSING = (
    "exit code 2 (0.4 s)\n"
    "==================================== ERRORS ====================================\n"
    "_____________________ ERROR collecting tests/test_store.py _____________________\n"
    "ImportError while importing test module '/w/tests/test_store.py'.\n"
    "Traceback:\n"
    "tests/test_store.py:1: in <module>\n"
    "    from kvstore.store import Store\n"
    "E   ModuleNotFoundError: No module named 'kvstore.store'\n"
    "=========================== short test summary info ============================\n"
    "ERROR tests/test_store.py\n"
    "1 error in 0.05s"
)


def make_task(project, *, title: str, description: str = "", domain: str = "general",
              tests: tuple[tuple[str, str], ...] = ()) -> Task:
    task = Task.objects.create(project=project, epic=project.epics.first(), key=f"X{Task.objects.count()}",
                               title=title, description=description, domain=domain, position=1000)
    for position, (text, command) in enumerate(tests):
        AcceptanceTest.objects.create(task=task, position=position, description=text, command=command)
    return task


def call(tool_id: str, name: str, tool_input: dict, *, ok: bool = True, output: str = "ok") -> list[tuple[str, dict]]:
    return [("tool_use", {"id": tool_id, "name": name, "input": tool_input}),
            ("tool_result", {"tool_use_id": tool_id, "name": name, "is_error": not ok, "content": output})]


def fixed_import_session(project, task):
    session = session_create(project=project, kind="coding", model="claude-sonnet-5-5", provider="replay", task=task)
    events_append(session=session, events=[
        ("session_start", {}),
        *call("tu1", "read_file", {"path": "tests/test_store.py"}, output="from kvstore.store import Store"),
        *call("tu2", "run_command", {"command": "pytest -q"}, ok=False, output=MODULE_MISSING),
        *call("tu3", "edit_file", {"path": "kvstore/store.py", "old_string": "a", "new_string": "b"}),
        *call("tu4", "run_command", {"command": "pytest   -q"}, output="exit code 0 (0.3 s)\n3 passed"),
        *call("tu5", "add_note", {"note": "the store needs kvstore/__init__.py; password=hunter2"}),
        ("session_end", {"status": "completed", "reason": "task done"}),
    ])
    return session


def dated(day: int) -> str:
    return (NOW - timedelta(days=day)).isoformat()


def failure(command: str, error: str, *, fix: str = "", at: str = "") -> dict:
    return {"command": command, "error": error, "fix": fix, "task": "T1", "session": None, "at": at or dated(1)}


def content_with(*, failures=(), patterns=(), core_files=(), techniques=()) -> dict:
    return {"failures": list(failures), "patterns": list(patterns), "core_files": list(core_files),
            "techniques": list(techniques)}


def commit_files(path: Path, files: dict[str, str]) -> None:
    repo = git.Repo.init(path, initial_branch="main")
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    repo.index.add(list(files))
    repo.index.commit("files", author=AUTHOR, committer=AUTHOR)


@pytest.fixture
def repo_project(planned_project, tmp_path):
    planned_project.repo_path = str(tmp_path / "repo")
    planned_project.save()
    commit_files(tmp_path / "repo", {"app/models.py": "", "migrations/0001.sql": "", "README.md": "",
                                     "tests/test_models.py": ""})
    return planned_project


# --- classification -------------------------------------------------------------------------------------------

def test_a_general_task_about_migrations_and_models_is_classified_as_database(planned_project):
    task = make_task(planned_project, title="Add a migration for the users table in models.py")
    assert classify_domain(task) == "database"


def test_the_plans_domain_wins_over_the_words(planned_project):
    task = make_task(planned_project, title="Add a migration for the users table", domain="frontend")
    assert classify_domain(task) == "frontend"


def test_a_vague_task_stays_general_even_with_a_test_command(planned_project):
    task = make_task(planned_project, title="Tidy things up a bit", tests=(("it works", "pytest -q tests/test_x.py"),))
    assert classify_domain(task) == "general"


def test_file_paths_in_the_text_count_as_domain_signals(planned_project):
    task = make_task(planned_project, title="Update templates/index.html")
    assert classify_domain(task) == "frontend"


def test_an_unknown_domain_is_refused(project):
    with pytest.raises(ValidationError) as caught:
        expertise_file(project=project, domain="astrology")
    assert caught.value.code == "unknown_domain" and "database" in caught.value.message


# --- learning -------------------------------------------------------------------------------------------------

def test_a_session_teaches_its_failure_fix_pattern_file_and_technique(planned_project):
    task = planned_project.tasks.get(key="T2")  # "User model and migration", planned as database
    session = fixed_import_session(planned_project, task)

    update = learn_from_session(session=session)

    expertise = ExpertiseFile.objects.get(project=planned_project, domain="database")
    [fail] = expertise.content["failures"]
    assert fail["command"] == "pytest -q" and fail["error"] == "ModuleNotFoundError: No module named 'kvstore.store'"
    assert fail["fix"] == "edited kvstore/store.py; then `pytest -q` passed"
    assert fail["task"] == "T2" and fail["session"] == session.pk
    assert expertise.content["patterns"][0]["pattern"] == "read_file → edit_file → run_command"
    assert [(f["path"], f["touches"], f["source"]) for f in expertise.content["core_files"]] == [
        ("kvstore/store.py", 1, "session")]
    texts = [t["text"] for t in expertise.content["techniques"]]
    assert texts == ["T2 User model and migration: edited kvstore/store.py; verified with `pytest -q`",
                     "the store needs kvstore/__init__.py; [redacted]"]
    assert update.change_type == "learned" and update.version == expertise.version == 1
    assert update.session == session and "+- `pytest -q` failed: ModuleNotFoundError" in update.diff
    assert expertise.line_count == line_count(expertise.content)


def test_learning_the_same_session_twice_changes_nothing(planned_project):
    session = fixed_import_session(planned_project, planned_project.tasks.get(key="T2"))
    learn_from_session(session=session)

    assert learn_from_session(session=session) is None

    expertise = ExpertiseFile.objects.get(project=planned_project, domain="database")
    assert expertise.version == 1 and expertise.updates.count() == 1
    assert expertise.content["core_files"][0]["touches"] == 1 and expertise.content["patterns"][0]["uses"] == 1


def test_a_session_learns_into_the_domain_its_prompt_was_given(planned_project):
    session = fixed_import_session(planned_project, planned_project.tasks.get(key="T2"))
    session.task_type = "testing"
    session.save()

    learn_from_session(session=session)

    assert [f.version for f in expertise_all(project=planned_project) if f.domain in ("database", "testing")] == [0, 1]
    [update] = expertise_history(project=planned_project, domain="testing")
    assert update.session == session and expertise_read(project=planned_project, domain="database").pk is None


def test_a_resumed_sessions_new_calls_are_learned_and_merged(planned_project):
    session = fixed_import_session(planned_project, planned_project.tasks.get(key="T2"))
    learn_from_session(session=session)
    events_append(session=session, events=[
        *call("tu9", "read_file", {"path": "kvstore/store.py"}),
        *call("tu10", "write_file", {"path": "kvstore/store.py", "content": "x"}),
        *call("tu11", "run_command", {"command": "pytest -q"}, ok=False, output=MODULE_MISSING),
    ])

    update = learn_from_session(session=session)

    expertise = ExpertiseFile.objects.get(project=planned_project, domain="database")
    assert update.version == 2 and len(expertise.content["failures"]) == 1  # same command and error: merged
    assert expertise.content["failures"][0]["fix"].startswith("edited kvstore/store.py")  # the known fix is kept
    assert expertise.content["core_files"][0]["touches"] == 2


def test_a_session_without_a_passing_rerun_records_the_failure_without_a_fix(planned_project):
    task = make_task(planned_project, title="Write the Dockerfile", domain="deployment")
    session = session_create(project=planned_project, kind="coding", model="m", provider="replay", task=task)
    events_append(session=session, events=[
        *call("a", "run_command", {"command": "docker build ."}, ok=False,
              output="exit code 127 (0.0 s)\nbash: docker: command not found"),
        ("session_end", {"status": "failed"}),
    ])

    learn_from_session(session=session)

    content = ExpertiseFile.objects.get(project=planned_project, domain="deployment").content
    assert content["failures"][0]["error"] == "bash: docker: command not found"
    assert content["failures"][0]["fix"] == "" and content["techniques"] == []


# --- the line cap ---------------------------------------------------------------------------------------------

def test_the_line_cap_drops_the_oldest_failures_and_keeps_patterns_and_files():
    failures = [failure("pytest -q", f"Error {i}", at=(NOW + timedelta(minutes=i)).isoformat()) for i in range(1142)]
    random.Random(4).shuffle(failures)
    patterns = [{"pattern": f"read_file → edit_file{i}", "uses": 1, "last_seen": dated(300)} for i in range(20)]
    files = [{"path": f"f{i}.py", "touches": 1, "last_seen": dated(300), "source": "session"} for i in range(30)]
    content = content_with(failures=failures, patterns=patterns, core_files=files)
    assert line_count(content) == 1200

    pruned, removed = enforce_line_limit(content, 1000)

    assert line_count(pruned) <= 1000 and removed == {"failures": 200, "patterns": 0, "core_files": 0,
                                                       "techniques": 0}
    kept = {f["error"] for f in pruned["failures"]}
    assert kept == {f"Error {i}" for i in range(200, 1142)}
    assert pruned["patterns"] == patterns and pruned["core_files"] == files
    assert len(content["failures"]) == 1142  # the input is left alone


# --- validation and scans -------------------------------------------------------------------------------------

def test_validation_drops_missing_files_and_old_failures(repo_project):
    expertise = ExpertiseFile.objects.create(project=repo_project, domain="database", content=content_with(
        failures=[failure("pytest -q", "old", at=dated(40)), failure("pytest -q", "fresh", at=dated(2))],
        core_files=[{"path": "app/models.py", "touches": 3, "last_seen": dated(1), "source": "session"},
                    {"path": "gone.py", "touches": 1, "last_seen": dated(1), "source": "session"}]))

    update = validate_expertise(expertise=expertise, now=NOW)

    assert [f["error"] for f in expertise.content["failures"]] == ["fresh"]
    assert [f["path"] for f in expertise.content["core_files"]] == ["app/models.py"]
    assert expertise.validated_at == NOW and expertise.version == 1
    assert update.change_type == "validated" and update.version == 1
    assert update.summary == "validated: removed 1 missing file, 1 failure older than 30 days"

    again = validate_expertise(expertise=expertise, now=NOW)
    assert again.summary == "validated: nothing stale" and again.version == 1 and expertise.updates.count() == 2


def test_validation_needs_a_repository_with_commits(project, tmp_path):
    expertise = expertise_file(project=project, domain="api")
    with pytest.raises(ValidationError) as caught:
        validate_expertise(expertise=expertise)
    assert caught.value.code == "no_repository"

    git.Repo.init(tmp_path / "empty", initial_branch="main")
    project.repo_path = str(tmp_path / "empty")
    project.save()
    with pytest.raises(ValidationError) as caught:
        validate_expertise(expertise=expertise)
    assert caught.value.code == "no_repository" and not ExpertiseUpdate.objects.exists()


def test_a_scan_adds_the_domains_files_and_leaves_known_ones_alone(repo_project):
    expertise = ExpertiseFile.objects.create(project=repo_project, domain="database", content=content_with(
        core_files=[{"path": "app/models.py", "touches": 4, "last_seen": dated(1), "source": "session"}]))

    update = self_improve(expertise=expertise)

    files = {f["path"]: (f["touches"], f["source"]) for f in expertise.content["core_files"]}
    assert files == {"app/models.py": (4, "session"), "migrations/0001.sql": (0, "scan")}
    assert update.change_type == "improved" and update.summary == "scanned 4 files: added 1"


def test_a_scan_of_an_empty_file_finds_models_and_migrations_but_not_the_readme(repo_project):
    expertise = expertise_file(project=repo_project, domain="database")
    self_improve(expertise=expertise)
    assert sorted(f["path"] for f in expertise.content["core_files"]) == ["app/models.py", "migrations/0001.sql"]


# --- prompts and hand edits -----------------------------------------------------------------------------------

def test_the_prompt_excerpt_fits_the_limit_and_puts_the_fixed_failure_first():
    content = content_with(
        failures=[failure("make", "fixed one", fix="edited Makefile", at=dated(20)),
                  *(failure("pytest -q", f"unfixed {i}", at=dated(i)) for i in range(1, 30))],
        techniques=[{"text": f"technique {i}", "task": "T1", "session": 1, "at": dated(i)} for i in range(30)],
        patterns=[{"pattern": f"p{i}", "uses": i, "last_seen": dated(i)} for i in range(30)],
        core_files=[{"path": f"f{i}.py", "touches": i, "last_seen": dated(i), "source": "session"}
                    for i in range(30)])

    text = format_for_prompt(content, limit=20)

    lines = text.splitlines()
    assert len(lines) <= 20 and lines[0] == "## Failures and their fixes"
    assert "fixed one" in lines[1] and "unfixed 1 " in lines[2]  # then the most recent
    assert all(f"## {title}" in text for title in ("Techniques that worked", "Effective tool patterns", "Core files"))
    assert "p29" in text and "f29.py" in text  # most used, most touched first
    assert len(format_for_prompt(content, limit=5).splitlines()) <= 5
    assert format_for_prompt(content_with()) == "" and render_markdown(content_with()) == ""


def test_the_prompt_reads_an_existing_file_and_creates_none(project):
    assert expertise_for_prompt(project=project, domain="api") == ""
    assert not ExpertiseFile.objects.exists()


def test_a_hand_edit_is_saved_as_a_new_version(project, owner):
    expertise = expertise_file(project=project, domain="api")
    edited = content_with(techniques=[{"text": "Return 422 for bad input", "at": dated(1)}])

    update = expertise_edit(expertise=expertise, content=edited, author=owner)

    assert update.change_type == "edited" and update.author == owner and expertise.version == 1
    assert expertise.content["techniques"] == [{"text": "Return 422 for bad input", "task": "", "session": None,
                                                "at": dated(1)}]
    assert expertise_for_prompt(project=project, domain="api").endswith("Return 422 for bad input (" + dated(1)[:10]
                                                                            + ")")


def test_a_hand_edit_with_a_bad_shape_is_refused(project, owner):
    expertise = expertise_file(project=project, domain="api")
    bad = content_with(failures=[{"command": "pytest", "fix": "", "at": dated(1)}])

    with pytest.raises(ValidationError) as caught:
        expertise_edit(expertise=expertise, content=bad, author=owner)

    assert caught.value.code == "invalid_fields" and "failures[0].error" in caught.value.message
    with pytest.raises(ValidationError) as caught:
        expertise_edit(expertise=expertise, content={"failures": []}, author=owner)
    assert caught.value.code == "invalid_fields" and expertise.version == 0
