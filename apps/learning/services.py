"""Changing what the project learned: the one writer of an expertise file (`expertise_apply`: row lock, version
bump only on a real change, an `ExpertiseUpdate` with the diff), a hand edit checked field by field, validation
against the repository and a repository scan. Learning from a session is `lessons.learn_from_session`."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from datetime import datetime, timedelta

import git
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.agents.models import AgentSession
from apps.core.errors import ValidationError
from apps.learning.domains import path_domains
from apps.learning.expertise import (
    LISTS,
    OPTIONAL,
    REQUIRED,
    SCAN_CAP,
    clean,
    domain_check,
    enforce_line_limit,
    line_count,
    normalized,
    render_markdown,
    ts,
)
from apps.learning.models import ChangeType, ExpertiseFile, ExpertiseUpdate, empty_expertise
from apps.projects.models import Domain, Project


def expertise_file(*, project: Project, domain: str) -> ExpertiseFile:
    domain_check(domain)
    return ExpertiseFile.objects.get_or_create(project=project, domain=domain)[0]


def expertise_apply(*, expertise: ExpertiseFile, change: Callable[[dict], tuple[dict, str]], change_type: str,
           session: AgentSession | None = None, author=None, always: bool = False,
           stamp: dict | None = None) -> ExpertiseUpdate | None:
    """The one writer. `change` runs on the locked row's content, so concurrent learners merge instead of losing
    each other's items. Returns None when nothing changed and `always` is off."""
    with transaction.atomic():
        row = ExpertiseFile.objects.select_for_update().get(pk=expertise.pk)
        old = normalized(row.content)
        new, summary = change(normalized(old))
        changed = new != old
        if not changed and not always:
            return None
        before = row.version
        if changed:
            row.content, row.version = new, row.version + 1
        row.line_count = line_count(new)
        for field, value in (stamp or {}).items():
            setattr(row, field, value)
        row.save()
        diff = difflib.unified_diff(render_markdown(old).splitlines(), render_markdown(new).splitlines(),
                                    fromfile=f"v{before}", tofile=f"v{row.version}", lineterm="")
        update = ExpertiseUpdate.objects.create(
            expertise=row, session=session, author=author, version=row.version, change_type=change_type,
            summary=clean(summary, 500) or str(change_type), diff="\n".join(diff))
    expertise.refresh_from_db()
    return update


def _tracked_files(project: Project) -> list[str]:
    branch = project.default_branch
    missing = ValidationError(f"project {project.slug} has no repository with commits on {branch!r} "
                              f"(repo_path: {project.repo_path or 'not set'}); run a task first",
                              code="no_repository")
    if not project.repo_path:  # Repo("") would open the current directory's repository
        raise missing
    try:
        listing = git.Repo(project.repo_path).git.ls_tree("-r", "--name-only", "-z", f"refs/heads/{branch}")
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, git.GitCommandError):
        raise missing from None
    return [path for path in listing.split("\0") if path]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def validate_expertise(*, expertise: ExpertiseFile, now: datetime | None = None) -> ExpertiseUpdate:
    now = now or timezone.now()
    tracked = set(_tracked_files(expertise.project))
    days = settings.EXPERTISE_FAILURE_MAX_AGE_DAYS
    cutoff = (now - timedelta(days=days)).timestamp()

    def change(content: dict) -> tuple[dict, str]:
        files = [f for f in content["core_files"] if str(f.get("path", "")).removeprefix("./") in tracked]
        fresh = [f for f in content["failures"] if ts(f.get("at")) >= cutoff]
        gone, stale = len(content["core_files"]) - len(files), len(content["failures"]) - len(fresh)
        content.update(core_files=files, failures=fresh)
        removed = [*([_plural(gone, "missing file")] if gone else []),
                   *([f"{_plural(stale, 'failure')} older than {days} days"] if stale else [])]
        return content, "validated: " + (f"removed {', '.join(removed)}" if removed else "nothing stale")

    return expertise_apply(expertise=expertise, change=change, change_type=ChangeType.VALIDATED, always=True,
                  stamp={"validated_at": now})


def _belongs(domain: str, path: str) -> bool:
    found = path_domains(path)
    return not found if domain == Domain.GENERAL else domain in found


def self_improve(*, expertise: ExpertiseFile) -> ExpertiseUpdate:
    files = _tracked_files(expertise.project)
    matched = sorted((p for p in files if _belongs(expertise.domain, p)), key=lambda p: (p.count("/"), p))
    now = timezone.now().isoformat()

    def change(content: dict) -> tuple[dict, str]:
        known = {item.get("path") for item in content["core_files"]}
        added = [p for p in matched if p not in known][:SCAN_CAP]  # shallow paths first: entry points, configs
        content["core_files"] += [{"path": p, "touches": 0, "last_seen": now, "source": "scan"} for p in added]
        return enforce_line_limit(content)[0], f"scanned {len(files)} files: added {len(added)}"

    return expertise_apply(expertise=expertise, change=change, change_type=ChangeType.IMPROVED, always=True)


def _invalid(field: str, problem: str) -> ValidationError:
    return ValidationError(f"{field}: {problem}", code="invalid_fields", details={"fields": {field: [problem]}})


def _checked_item(key: str, index: int, item: object) -> dict:
    if not isinstance(item, dict):
        raise _invalid(f"{key}[{index}]", "must be an object")
    for name, kind in REQUIRED[key].items():
        value, field = item.get(name), f"{key}[{index}].{name}"
        if kind is datetime and not (isinstance(value, str) and parse_datetime(value)):
            raise _invalid(field, "required, an ISO date-time")
        if kind is int and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise _invalid(field, "required, a whole number ≥ 0")
        if kind is str and not (isinstance(value, str) and (value.strip() or name == "fix")):
            raise _invalid(field, "required, a string" + ("" if name == "fix" else ", not empty"))
    if key == "core_files" and item.get("source", "session") not in ("session", "scan"):
        raise _invalid(f"{key}[{index}].source", "must be session or scan")
    known = {**OPTIONAL[key], **{name: item[name] for name in REQUIRED[key]}}
    return {name: item.get(name, default) for name, default in known.items()}


def expertise_edit(*, expertise: ExpertiseFile, content: dict, author, summary: str = "edited by hand"
                   ) -> ExpertiseUpdate:
    if not isinstance(content, dict):
        raise _invalid("content", f"must be an object with the lists {', '.join(LISTS)}")
    if unknown := sorted(set(content) - set(LISTS)):
        raise _invalid(unknown[0], f"unknown list; expected {', '.join(LISTS)}")
    clean = empty_expertise()
    for key in clean:
        if not isinstance(content.get(key), list):
            raise _invalid(key, "required, a list")
        clean[key] = [_checked_item(key, i, item) for i, item in enumerate(content[key])]
    if (lines := line_count(clean)) > settings.EXPERTISE_MAX_LINES:
        raise _invalid("content", f"{lines} lines; at most {settings.EXPERTISE_MAX_LINES} are kept")
    return expertise_apply(expertise=expertise, change=lambda _old: (clean, summary), change_type=ChangeType.EDITED,
                  author=author, always=True)
