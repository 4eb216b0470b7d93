"""What a pause notification says, per channel: the message, Slack / Discord / generic webhook payloads, the SMS
text, and masked phone numbers. Pure formatting: sending is `notifications.py`."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from django.conf import settings
from django.utils import timezone

from apps.interventions.models import (
    PausedSession,
    PauseType,
    WebhookFormat,
)

SMS_LIMIT = 160  # one SMS segment


# Slack attachment / Discord embed colour per pause type: red for errors, amber for limits, blue for people.
PAUSE_COLORS: dict[str, str] = {
    PauseType.RETRY_LIMIT: "#e8590c",
    PauseType.CRITICAL_ERROR: "#d32f2f",
    PauseType.BUDGET: "#f59f00",
    PauseType.TURN_CAP: "#f59f00",
    PauseType.CIRCUIT_OPEN: "#c2255c",
    PauseType.RATE_LIMIT: "#868e96",
    PauseType.HELP_REQUESTED: "#1c7ed6",
    PauseType.MERGE_CONFLICT: "#7048e8",
    PauseType.MANUAL: "#495057",
}


DEFAULT_COLOR = "#868e96"


def pause_message(*, pause: PausedSession) -> dict[str, Any]:
    """Everything a notification says about `pause`, as plain data (worker threads read it, never the models)."""
    project, task = pause.project, pause.current_task
    label = _pause_label(pause.pause_type)
    link = f"{settings.SITE_URL}/interventions/?project={project.slug}"
    return {
        "title": f"YokeFlow: session #{pause.session_id} paused — {label}",
        "pause_id": pause.pk,
        "pause_type": pause.pause_type,
        "pause_label": label,
        "reason": pause.pause_reason,
        "session_id": pause.session_id,
        "project": {"id": project.pk, "slug": project.slug, "name": project.name},
        "task": {"key": task.key, "title": task.title} if task is not None else None,
        "blocker": _blocker_summary(pause.blocker_info or {}),
        "retries": _retry_summary(pause.retry_stats or {}),
        "blocker_info": pause.blocker_info or {},
        "retry_stats": pause.retry_stats or {},
        "paused_at": pause.paused_at.isoformat(),
        "paused_at_epoch": int(pause.paused_at.timestamp()),
        "paused_at_text": timezone.localtime(pause.paused_at).strftime("%Y-%m-%d %H:%M %Z"),
        "link": link,
        "resume_command": f'yokeflow resume {pause.pk} --by NAME --notes "..."',
        "color": PAUSE_COLORS.get(pause.pause_type, DEFAULT_COLOR),
    }


def _pause_label(pause_type: str) -> str:
    return PauseType(pause_type).label if pause_type in PauseType.values else pause_type


def _blocker_summary(info: dict[str, Any]) -> str:
    """The command and the last lines of its output first (what a person needs), then the other findings."""
    lines = []
    if info.get("command"):
        lines.append(f"Command: {info['command']}")
    output = str(info.get("output_tail") or info.get("output") or "").strip()
    if output:
        lines.append("Output (last lines):\n" + "\n".join(output.splitlines()[-5:]))
    for key, value in info.items():
        if key not in {"command", "output_tail", "output"} and value not in (None, "", [], {}):
            lines.append(f"{key.replace('_', ' ').capitalize()}: {_short(value)}")
    return "\n".join(lines)[:1000]


def _retry_summary(stats: dict[str, Any]) -> str:
    lines = []
    for signature, entry in list(stats.items())[:5]:
        entry = entry if isinstance(entry, dict) else {"count": entry}
        line = f"{entry.get('command') or signature}: {entry.get('count', '?')} tries"
        if entry.get("last_error"):
            line += f" (last error: {_short(entry['last_error'])})"
        lines.append(line)
    return "\n".join(lines)[:600]


def _short(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mask_phone(number: str) -> str:
    """`+15551234567` → `…4567`: enough to tell recipients apart in the audit trail."""
    digits = "".join(char for char in number if char.isdigit())
    return f"…{digits[-4:]}" if len(digits) > 4 else "…"


def webhook_format_for(*, url: str, fmt: str = WebhookFormat.AUTO) -> str:
    """The payload format for `url`: an explicit choice wins; `auto` looks at the host (never the path, so a
    generic endpoint whose path mentions Slack stays generic)."""
    if fmt != WebhookFormat.AUTO:
        return str(fmt)
    parts = urllib.parse.urlsplit(url or "")
    host = (parts.hostname or "").lower()
    if host == "hooks.slack.com":
        return WebhookFormat.SLACK.value
    is_discord = any(host == name or host.endswith("." + name) for name in ("discord.com", "discordapp.com"))
    if is_discord and parts.path.startswith("/api/webhooks"):
        return WebhookFormat.DISCORD.value
    return WebhookFormat.GENERIC.value


def webhook_payload(*, message: dict[str, Any], fmt: str) -> dict[str, Any]:
    builders = {WebhookFormat.SLACK: _slack_payload, WebhookFormat.DISCORD: _discord_payload}
    return builders.get(fmt, _generic_payload)(message)


def _fields(message: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(name, value, short) for the chat formats; empty values are left out (Discord refuses them)."""
    project, task = message["project"], message["task"]
    fields = [
        ("Project", f"{project['name']} ({project['slug']})", True),
        ("Task", f"{task['key']}: {task['title']}" if task else "", True),
        ("Pause type", message["pause_label"], True),
        ("Blocker", message["blocker"], False),
        ("Retries", message["retries"], False),
        ("Resume", message["resume_command"], False),
    ]
    return [(name, value, short) for name, value, short in fields if value]


def _slack_payload(message: dict[str, Any]) -> dict[str, Any]:
    attachment = {
        "color": message["color"], "title": message["title"], "title_link": message["link"],
        "text": message["reason"],
        "fields": [{"title": name, "value": value, "short": short} for name, value, short in _fields(message)],
        "footer": "YokeFlow", "ts": message["paused_at_epoch"],
    }
    return {"text": f"{message['title']} <{message['link']}|Open interventions>", "attachments": [attachment]}


def _discord_payload(message: dict[str, Any]) -> dict[str, Any]:
    # Discord's limits: title 256, description 4096, field value 1024 characters.
    embed = {
        "title": message["title"][:256], "url": message["link"], "description": message["reason"][:4096],
        "color": int(message["color"].lstrip("#"), 16),
        "fields": [{"name": name, "value": value[:1024], "inline": short} for name, value, short in _fields(message)],
        "timestamp": message["paused_at"],
    }
    return {"content": message["title"][:2000], "embeds": [embed]}


def _generic_payload(message: dict[str, Any]) -> dict[str, Any]:
    return {"event": "session_paused", "pause": {
        "id": message["pause_id"], "type": message["pause_type"], "reason": message["reason"],
        "session_id": message["session_id"], "project": message["project"], "task": message["task"],
        "paused_at": message["paused_at"], "blocker_info": message["blocker_info"],
        "retry_stats": message["retry_stats"], "resume_url": message["link"],
        "resume_command": message["resume_command"],
    }}


def sms_body(*, message: dict[str, Any]) -> str:
    """One segment: where it paused, why, and the command that continues it; the place is shortened to fit."""
    task = message["task"]
    where = message["project"]["slug"] + (f" {task['key']}" if task else "")
    tail = f" paused ({message['pause_type']}). yokeflow resume {message['pause_id']}"
    room = SMS_LIMIT - len("YokeFlow: ") - len(tail)
    if len(where) > room:
        where = where[: max(room - 1, 0)] + "…"
    return f"YokeFlow: {where}{tail}"[:SMS_LIMIT]
