"""Expertise files: what coding sessions taught about one domain of one project, kept small and current.

`ExpertiseFile.content` is JSON with four lists (every date an ISO-8601 string):

    failures    {"command", "error", "fix", "task", "session", "at"}  a failing command, its first meaningful error
                                                                    line and what made it pass ("" if nothing did)
    patterns    {"pattern", "uses", "last_seen"}                    tool sequences that ended in a passing command,
                                                                    e.g. "read_file → edit_file → run_command"
    core_files  {"path", "touches", "last_seen", "source"}          files sessions edited ("session") or a scan of
                                                                    the repository found ("scan")
    techniques  {"text", "task", "session", "at"}                   how a completed task was done; the agent's notes

This module is the format: checking, trimming, rendering and ranking content, no database. The writers are in
`services.py` (one of them, `expertise_apply`, is the only writer of a file), the reads in `selectors.py`.

Its markdown form (`render_markdown`) is one bullet per item under four headings; the EXPERTISE_MAX_LINES cap
applies to that form's line count. Learning is deterministic (it reads the session's tool calls, no LLM). Every
change goes through `services.expertise_apply`, which locks the row, bumps the version only when the content
changed, and records an `ExpertiseUpdate` carrying the unified diff of the markdown.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.core.errors import ValidationError
from apps.core.redaction import redact
from apps.learning.models import empty_expertise
from apps.projects.models import Domain

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


def domain_check(domain: str) -> None:
    if domain not in Domain.values:
        raise ValidationError(f"domain {domain!r} is unknown; allowed: {', '.join(Domain.values)}",
                              code="unknown_domain", details={"allowed": list(Domain.values)})


def unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


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
