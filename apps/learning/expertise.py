"""Expertise files: what coding sessions taught about one domain of one project, kept small and current.

`ExpertiseFile.content` is JSON with four lists (every date an ISO-8601 string):

    failures    {"command", "error", "fix", "task", "session", "at"}  a failing command, its first meaningful error
                                                                    line and what made it pass ("" if nothing did)
    patterns    {"pattern", "uses", "last_seen"}                    tool sequences that ended in a passing command,
                                                                    e.g. "read_file → edit_file → run_command"
    core_files  {"path", "touches", "last_seen", "source"}          files sessions edited ("session") or a scan of
                                                                    the repository found ("scan")
    techniques  {"text", "task", "session", "at"}                   how a completed task was done; the agent's notes

Its markdown form (`render_markdown`) is one bullet per item under four headings; the EXPERTISE_MAX_LINES cap
applies to that form's line count. Learning is deterministic (it reads the session's tool calls, no LLM). Every
change goes through `_apply`, which locks the row, bumps the version only when the content changed, and records an
`ExpertiseUpdate` carrying the unified diff of the markdown.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

import git
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.agents.models import AgentSession
from apps.core.errors import ValidationError
from apps.core.redaction import redact
from apps.learning.domains import path_domains
from apps.learning.models import ChangeType, ExpertiseFile, ExpertiseUpdate, empty_expertise
from apps.projects.models import Domain, Project

SECTIONS = {"failures": "Failures and their fixes", "techniques": "Techniques that worked",
            "patterns": "Effective tool patterns", "core_files": "Core files"}


LISTS = tuple(SECTIONS)  # markdown order, also the order sections are given prompt lines


REQUIRED = {"failures": {"command": str, "error": str, "fix": str, "at": datetime},
            "patterns": {"pattern": str, "uses": int, "last_seen": datetime},
            "core_files": {"path": str, "touches": int, "last_seen": datetime},
            "techniques": {"text": str, "at": datetime}}


OPTIONAL = {"failures": {"task": "", "session": None}, "techniques": {"task": "", "session": None},
            "core_files": {"source": "session"}, "patterns": {}}


SCAN_CAP = 50  # a scan seeds the file; sessions, not a directory listing, should fill it


def one_line(value: object) -> str:
    # str.split() splits on every character splitlines() breaks at, so a bullet is always exactly one line.
    return " ".join(str("" if value is None else value).split())


def clean(text: object, limit: int) -> str:
    text = redact(one_line(text))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def ts(value: object) -> float:
    when = parse_datetime(value) if isinstance(value, str) else None
    if when is None:
        return 0.0  # unknown dates count as oldest: they go first when pruning
    return (when if timezone.is_aware(when) else when.replace(tzinfo=UTC)).timestamp()


def later(a: str, b: str) -> str:
    return b if ts(b) > ts(a) else a


def _bullet(key: str, item: dict) -> str:
    f = {name: one_line(value) for name, value in item.items()}
    day = f.get("at") or f.get("last_seen") or ""
    origin = ", ".join(x for x in (f.get("task"), day[:10]) if x)
    if key == "failures":
        return f"- `{f.get('command')}` failed: {f.get('error')} → fix: {f.get('fix') or 'none found yet'} ({origin})"
    if key == "techniques":
        return f"- {f.get('text')} ({origin})"
    if key == "patterns":
        return f"- {f.get('pattern')} (used {f.get('uses', 0)}×, last {day[:10]})"
    if item.get("source") == "scan" and not item.get("touches"):
        return f"- `{f.get('path')}` (found by a repository scan)"
    return f"- `{f.get('path')}` (touched {f.get('touches', 0)}×, last {day[:10]})"


def render_markdown(content: dict) -> str:
    sections = [f"## {SECTIONS[key]}\n\n" + "\n".join(_bullet(key, item) for item in content.get(key) or [])
                for key in LISTS if content.get(key)]
    return "\n\n".join(sections) + "\n" if sections else ""


def line_count(content: dict) -> int:
    return len(render_markdown(content).splitlines())


def _lines_for(counts: dict[str, int]) -> int:
    # Mirrors render_markdown: per section a heading and a blank line, a blank line between sections.
    sections = sum(1 for n in counts.values() if n)
    return sum(counts.values()) + 3 * sections - 1 if sections else 0


_PRUNE_ORDER: tuple[tuple[str, Callable[[dict], tuple]], ...] = (
    ("failures", lambda i: (ts(i.get("at")),)),
    ("patterns", lambda i: (ts(i.get("last_seen")),)),
    ("techniques", lambda i: (ts(i.get("at")),)),
    ("core_files", lambda i: (ts(i.get("last_seen")), i.get("touches") or 0)),
)


def normalized(content: dict | None) -> dict:
    content = content or {}
    return {key: copy.deepcopy(list(content.get(key) or [])) for key in empty_expertise()}


def _drop_oldest(items: list[dict], count: int, order: Callable[[dict], tuple]) -> list[dict]:
    oldest = set(sorted(range(len(items)), key=lambda i: order(items[i]))[:count])
    return [item for i, item in enumerate(items) if i not in oldest]


def enforce_line_limit(content: dict, max_lines: int | None = None) -> tuple[dict, dict[str, int]]:
    """Prune oldest-first until the markdown fits: failures go first (they age fastest), then patterns, then
    techniques, core files last. Counted arithmetically (one line per item), then checked once for real."""
    limit = settings.EXPERTISE_MAX_LINES if max_lines is None else max_lines
    pruned = normalized(content)
    counts = {key: len(pruned[key]) for key in LISTS}
    removed = dict.fromkeys(empty_expertise(), 0)
    for key, order in _PRUNE_ORDER:
        while counts[key] and _lines_for(counts) > limit:
            counts[key] -= 1
            removed[key] += 1
        pruned[key] = _drop_oldest(pruned[key], removed[key], order)
    for key, order in _PRUNE_ORDER:  # safety net should rendering and _lines_for ever disagree
        while pruned[key] and line_count(pruned) > limit:
            pruned[key] = _drop_oldest(pruned[key], 1, order)
            removed[key] += 1
    return pruned, removed


def _check_domain(domain: str) -> None:
    if domain not in Domain.values:
        raise ValidationError(f"domain {domain!r} is unknown; allowed: {', '.join(Domain.values)}",
                              code="unknown_domain", details={"allowed": list(Domain.values)})


def expertise_file(*, project: Project, domain: str) -> ExpertiseFile:
    _check_domain(domain)
    return ExpertiseFile.objects.get_or_create(project=project, domain=domain)[0]


def expertise_read(*, project: Project, domain: str) -> ExpertiseFile:
    """The domain's file, or an unsaved empty one (version 0): reading never creates rows."""
    _check_domain(domain)
    return ExpertiseFile.objects.filter(project=project, domain=domain).first() or ExpertiseFile(
        project=project, domain=domain)


def expertise_all(*, project: Project) -> list[ExpertiseFile]:
    files = {f.domain: f for f in ExpertiseFile.objects.filter(project=project)}
    return [files.get(domain) or ExpertiseFile(project=project, domain=domain) for domain in Domain.values]


def expertise_history(*, project: Project, domain: str, limit: int = 50) -> list[ExpertiseUpdate]:
    _check_domain(domain)
    updates = ExpertiseUpdate.objects.filter(expertise__project=project, expertise__domain=domain)
    return list(updates.select_related("expertise", "session", "author").order_by("-created", "-id")[:limit])


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


def unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


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


_PROMPT_ORDER: dict[str, Callable[[dict], tuple]] = {  # sorted descending: best first
    "failures": lambda i: (bool(i.get("fix")), ts(i.get("at"))),
    "techniques": lambda i: (ts(i.get("at")),),
    "patterns": lambda i: (i.get("uses") or 0, ts(i.get("last_seen"))),
    "core_files": lambda i: (i.get("touches") or 0, ts(i.get("last_seen"))),
}


def _fair_shares(sizes: dict[str, int], budget: int) -> dict[str, int]:
    """Split `budget` lines evenly over the sections, handing what small sections leave to the larger ones."""
    shares = dict.fromkeys(sizes, 0)
    open_keys = [key for key, size in sizes.items() if size]
    while budget > 0 and open_keys:
        each = max(1, budget // len(open_keys))
        for key in list(open_keys):
            take = min(each, sizes[key] - shares[key], budget)
            shares[key] += take
            budget -= take
            if shares[key] == sizes[key]:
                open_keys.remove(key)
    return shares


def format_for_prompt(content: dict | None, *, limit: int | None = None) -> str:
    limit = settings.EXPERTISE_PROMPT_LINES if limit is None else limit
    content = content or {}
    ranked = {key: sorted(content.get(key) or [], key=_PROMPT_ORDER[key], reverse=True) for key in LISTS}
    keys = [key for key in LISTS if ranked[key]]
    while keys and 3 * len(keys) - 1 > limit:  # a heading, one item, a blank line between: drop the last sections
        keys.pop()
    shares = _fair_shares({key: len(ranked[key]) for key in keys}, limit - (2 * len(keys) - 1))
    return "\n\n".join(f"## {SECTIONS[key]}\n" + "\n".join(_bullet(key, item) for item in ranked[key][:shares[key]])
                       for key in keys)


def expertise_for_prompt(*, project: Project, domain: str, limit: int | None = None) -> str:
    return format_for_prompt(expertise_read(project=project, domain=domain).content, limit=limit)


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
