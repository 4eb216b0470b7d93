"""Verbs of the `yokeflow` command owned by core: API tokens and the audit log."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone

from apps.core import ops
from apps.core.audit import audit_list, audit_record
from apps.core.crypto import secrets_rotate
from apps.core.errors import ValidationError
from apps.core.logins import login_unlock
from apps.core.models import AuditAction, AuditEvent
from apps.core.tokens import token_create
from apps.core.validation import age_or_none
from yokeflow.config import validate as config_validate


def register(subparsers: Any) -> None:
    ops.register(subparsers)  # doctor, db-wait
    _register_config(subparsers)
    token = subparsers.add_parser("token", help="manage API tokens")
    token_verbs = token.add_subparsers(dest="token_verb", required=True, metavar="ACTION")
    create = token_verbs.add_parser("create", help="create a bearer token for a user (shown once)")
    create.add_argument("username")
    create.add_argument("--name", default="", help="a label to recognise the token by")
    create.set_defaults(handler=_token_create)

    audit = subparsers.add_parser("audit", help="list the audit log: who did what, when, from where")
    audit.add_argument("--project", default=None, help="project slug or id")
    audit.add_argument("--action", default=None, help=f"one of {', '.join(AuditAction.values)}")
    audit.add_argument("--since", default=None, help="an age (30m, 12h, 7d, 2w) or a date (2026-11-01)")
    audit.add_argument("--limit", type=int, default=100)
    audit.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    audit.set_defaults(handler=_audit)

    keys = subparsers.add_parser("secrets", help="manage the keys of secrets stored in the database")
    keys_verbs = keys.add_subparsers(dest="secrets_verb", required=True, metavar="ACTION")
    rotate = keys_verbs.add_parser("rotate", help="re-encrypt every stored secret with the first ENCRYPTION_KEYS key")
    rotate.set_defaults(handler=_secrets_rotate)

    unlock = subparsers.add_parser("unlock", help="lift a login lockout for a username and/or an address")
    unlock.add_argument("username", nargs="?", default="")
    unlock.add_argument("--ip", default="", help="the address to unlock")
    unlock.set_defaults(handler=_unlock)


def _register_config(subparsers: Any) -> None:
    # `manage.py yokeflow config …` is handled by manage.py before Django starts (a bad setting may keep it from
    # starting); this registration lists the verb in --help and serves call_command. Both run yokeflow.config.
    config = subparsers.add_parser("config", help="check the configuration")
    config_verbs = config.add_subparsers(dest="config_verb", required=True, metavar="ACTION")
    validate = config_verbs.add_parser("validate", help="report every missing or invalid setting in one run, and "
                                       "whether the database, PROJECTS_ROOT and git work (non-zero exit on errors)")
    validate.set_defaults(handler=_config_validate)


def _config_validate(options: dict[str, Any], out: Any) -> None:
    config_validate(out.write)


def _secrets_rotate(options: dict[str, Any], out: Any) -> None:
    counts = secrets_rotate()
    audit_record(action=AuditAction.SECRETS_ROTATED, target="stored secrets", actor="command line", details=counts)
    out.write(f"re-encrypted {counts['rotated']} stored secret(s) with the first key"
              + (f"; {counts['unreadable']} could not be read with any key and were left as they are"
                 if counts["unreadable"] else ""))


def _unlock(options: dict[str, Any], out: Any) -> None:
    removed = login_unlock(username=options["username"], ip_address=options["ip"], by="command line")
    out.write(f"unlocked: {removed} failed-attempt record(s) removed")


def _token_create(options: dict[str, Any], out: Any) -> None:
    token, raw = token_create(username=options["username"], name=options["name"])
    out.write(raw)
    out.write(f"(token {token.prefix}… for {token.user.get_username()}; it is shown only this once)")


def _since(text: str | None) -> datetime | None:
    """`7d` (an age: m, h, d or w) or an ISO date/time (in the server's time zone unless it names one)."""
    if not text:
        return None
    age = age_or_none(text)
    if age is not None:
        return timezone.now() - age
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationError(f"--since: {text!r} is neither an age (7d, 12h) nor a date (2026-11-01)",
                              code="invalid_fields", details={"fields": {"since": ["age or date"]}}) from None
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


def _operator() -> Any:
    # An unsaved staff user: the command is an operator's tool and reads the whole log, as staff do.
    return get_user_model()(username="cli", is_staff=True)


def _audit(options: dict[str, Any], out: Any) -> None:
    events = audit_list(user=_operator(), project=options["project"] or None, action=options["action"],
                        since=_since(options["since"]), limit=options["limit"])
    if options["json"]:
        out.write(json.dumps([_event_row(event) for event in events], indent=2))
        return
    _audit_table(list(events), out)


def _event_row(event: AuditEvent) -> dict[str, Any]:
    return {"id": event.pk, "created": event.created.isoformat(), "actor": event.actor, "action": event.action,
            "target": event.target, "project": event.project_label or event.project_id,
            "origin": event.origin, "correlation_id": event.correlation_id, "details": event.details}


def _audit_table(events: list[AuditEvent], out: Any) -> None:
    if not events:
        out.write("no audit events")
        return
    rows = [("time", "actor", "action", "target", "origin", "correlation id")] + [
        (timezone.localtime(e.created).strftime("%Y-%m-%d %H:%M:%S"), e.actor, e.action, e.target[:40],
         e.origin, e.correlation_id) for e in events]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
