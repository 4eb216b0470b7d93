"""Learning from a session: its tool calls paired with their results, turned into failures (and the fix that
followed), patterns, core files and techniques, merged into the domain's expertise."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from apps.agents.models import AgentSession, SessionEvent
from apps.learning.domains import classify_domain
from apps.learning.expertise import clean, enforce_line_limit, later, unique
from apps.learning.models import ChangeType, ExpertiseFile, ExpertiseUpdate
from apps.learning.services import expertise_apply, expertise_file
from apps.projects.models import Domain

_EXCEPTION_LINE = re.compile(r"^(?:E\s+)?[\w.]*(?:Error|Exception|Exit|Interrupt)\b:")


_PYTEST_DETAIL = re.compile(r"^E\s{2,}\S")


_ERROR_WORDS = re.compile(r"Error|error|FAILED|No such|not found|denied|fatal:")


_KIND = {"read_file": "r", "search_files": "r", "list_files": "r", "write_file": "e", "edit_file": "e",
         "run_command": "x"}


@dataclass
class _Call:
    name: str
    input: dict
    at: str
    ok: bool = False
    done: bool = False
    content: str = ""

    @property
    def command(self) -> str:
        return " ".join(str(self.input.get("command", "")).split())

    @property
    def path(self) -> str:
        return str(self.input.get("path", "")).removeprefix("./")


def _text(value: object) -> str:
    if isinstance(value, list):  # content blocks
        return "\n".join(str(b.get("text", "")) if isinstance(b, dict) else str(b) for b in value)
    return str(value or "")


def _pair_calls(events: Iterable[SessionEvent]) -> list[_Call]:
    calls, pending = [], {}
    for event in events:
        payload = event.payload or {}
        if event.type == "tool_use":
            call = _Call(str(payload.get("name", "")), payload.get("input") or {}, event.created.isoformat())
            calls.append(call)
            pending[payload.get("id")] = call
        elif event.type == "tool_result" and (call := pending.pop(payload.get("tool_use_id"), None)):
            call.done, call.ok, call.content = True, not payload.get("is_error"), _text(payload.get("content"))
    return [call for call in calls if call.done]  # a call cut off by a crash taught nothing


def _error_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines()]
    # An exception line beats pytest's "E " detail, which beats any line that merely mentions an error.
    for pattern in (_EXCEPTION_LINE, _PYTEST_DETAIL, _ERROR_WORDS):
        if found := next((line for line in lines if pattern.search(line)), None):
            return clean(re.sub(r"^E\s+", "", found), 200)
    status = next((i for i, line in enumerate(lines) if line.startswith("exit code")), -1)
    rest = [line for line in lines[status + 1:] if line and line != "(no output)"]
    if rest:
        return clean(rest[0], 200)
    # Only the status line is left; without its duration, so the same failure dedups across sessions.
    return clean(re.sub(r"\s*\([\d.]+ s\)", "", lines[status] if status >= 0 else output) or "no output", 200)


def _join(paths: list[str], shown: int = 5) -> str:
    more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
    return ", ".join(paths[:shown]) + more


def _fix_after(calls: list[_Call], index: int) -> str:
    """What followed a failure: the edits up to the rerun that passed (or, failing a rerun, the next pass)."""
    later = calls[index + 1:]
    passing = [i for i, c in enumerate(later) if c.name == "run_command" and c.ok]
    same = [i for i in passing if later[i].command == calls[index].command]
    if not passing:
        return ""
    end = (same or passing)[0]
    edited = unique(c.path for c in later[:end] if c.ok and _KIND.get(c.name) == "e")
    ran = unique(f"`{c.command}`" for c in later[:end] if c.ok and c.name == "run_command")
    steps = (["edited " + _join(edited)] if edited else []) + (["ran " + _join(ran, 3)] if ran else [])
    passed = f"`{later[end].command}` passed"
    return clean("; ".join([*steps, "then " + passed]) if steps else passed, 300)


def _failures(calls: list[_Call], task: str, session_id: int) -> list[dict]:
    return [{"command": clean(c.command, 300), "error": _error_line(c.content), "fix": _fix_after(calls, i),
             "task": task, "session": session_id, "at": c.at}
            for i, c in enumerate(calls) if c.name == "run_command" and not c.ok]


def _patterns(calls: list[_Call]) -> list[dict]:
    steps = [c for c in calls if c.ok and c.name in _KIND]
    found = []
    for match in re.finditer(r"r+e+x", "".join(_KIND[c.name] for c in steps)):
        names = [c.name for c in steps[match.start():match.end()]]
        collapsed = [n for i, n in enumerate(names) if i == 0 or n != names[i - 1]]
        found.append({"pattern": " → ".join(collapsed), "uses": 1, "last_seen": steps[match.end() - 1].at})
    return found


def _core_files(calls: list[_Call]) -> list[dict]:
    last = {c.path: c.at for c in calls if c.ok and _KIND.get(c.name) == "e" and c.path}
    return [{"path": clean(p, 300), "touches": 1, "last_seen": at, "source": "session"} for p, at in last.items()]


def _techniques(session: AgentSession, events: list[SessionEvent], calls: list[_Call]) -> list[dict]:
    ended = [e for e in events if e.type == "session_end"]
    if not (any((e.payload or {}).get("status") == "completed" for e in ended) or session.status == "completed"):
        return []
    task, at = session.task, (ended or events)[-1].created.isoformat()
    edited = unique(c.path for c in calls if c.ok and _KIND.get(c.name) == "e")
    passing = [c for c in calls if c.ok and c.name == "run_command"]
    verified = [f"verified with `{passing[-1].command}`"] if passing else []  # the last pass is what counted
    how = (["edited " + _join(edited)] if edited else []) + verified
    notes = [str(c.input.get("note", "")) for c in calls if c.ok and c.name == "add_note"]
    texts = ([f"{task.key} {task.title}: " + "; ".join(how)] if how else []) + notes
    return [{"text": clean(t, 400), "task": task.key, "session": session.pk, "at": at} for t in unique(texts)]


_IDENTITY: dict[str, Callable[[dict], object]] = {
    "failures": lambda i: (i.get("command"), i.get("error")), "patterns": lambda i: i.get("pattern"),
    "core_files": lambda i: i.get("path"), "techniques": lambda i: i.get("text"),
}


def _merge_item(key: str, old: dict, new: dict) -> None:
    """A known item seen again: it is fresher, counts once more, and a fix found later fills an empty one."""
    stamp = "last_seen" if key in ("patterns", "core_files") else "at"
    old[stamp] = later(old.get(stamp, ""), new[stamp])
    if key == "failures":
        old["fix"] = old.get("fix") or new["fix"]
    elif key == "patterns":
        old["uses"] = (old.get("uses") or 0) + new["uses"]
    elif key == "core_files":
        old.update(touches=(old.get("touches") or 0) + 1, source="session")


def _merge(content: dict, lesson: dict[str, list[dict]]) -> None:
    for key, identity in _IDENTITY.items():
        known = {identity(item): item for item in content[key]}
        for item in lesson[key]:
            if (old := known.get(identity(item))) is not None:
                _merge_item(key, old, item)
            else:
                content[key].append(item)
                known[identity(item)] = item


def _unlearned_events(expertise: ExpertiseFile, session: AgentSession) -> list[SessionEvent]:
    # Counters (uses, touches) must not grow when a session is learned twice; a resumed session's later events
    # still count, so only events after the last time this session was learned are read.
    last = (ExpertiseUpdate.objects.filter(expertise=expertise, session=session, change_type=ChangeType.LEARNED)
            .order_by("-created").values_list("created", flat=True).first())
    events = session.events.order_by("seq")
    return list(events.filter(created__gt=last) if last else events)


def learn_from_session(*, session: AgentSession) -> ExpertiseUpdate | None:
    if session.task_id is None:
        return None
    # The domain the session's prompt was given expertise from, so what it learned lands in the same file.
    domain = session.task_type if session.task_type in Domain.values else classify_domain(session.task)
    expertise = expertise_file(project=session.project, domain=domain)

    def change(content: dict) -> tuple[dict, str]:
        events = _unlearned_events(expertise, session)
        if not events:
            return content, ""
        calls = _pair_calls(events)
        lesson = {"failures": _failures(calls, session.task.key, session.pk), "patterns": _patterns(calls),
                  "core_files": _core_files(calls), "techniques": _techniques(session, events, calls)}
        _merge(content, lesson)
        pruned, removed = enforce_line_limit(content)
        found = ", ".join(f"{len(items)} {key.replace('_', ' ')}" for key, items in lesson.items() if items)
        dropped = f"; pruned {sum(removed.values())} old items" if any(removed.values()) else ""
        return pruned, f"learned from session {session.pk} ({session.task.key}): {found or 'nothing new'}{dropped}"

    return expertise_apply(expertise=expertise, change=change, change_type=ChangeType.LEARNED, session=session)
