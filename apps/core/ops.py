"""Operator verbs of the `yokeflow` command: `doctor` (health as a table) and `db-wait` (start-up wait)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from apps.core.db import wait_for_database
from apps.core.errors import ConflictError
from apps.core.errors import DatabaseError as DatabaseUnavailable
from apps.core.health import ready, run_checks


def register(subparsers: Any) -> None:
    doctor = subparsers.add_parser("doctor", help="check the database, workers, broker, git, disk and provider key "
                                   "(exits non-zero when not ready)")
    doctor.add_argument("--quiet", action="store_true", help="print nothing; only the exit status")
    doctor.set_defaults(handler=_doctor)
    wait = subparsers.add_parser("db-wait", help="wait for the database with exponential backoff (start-up)")
    wait.add_argument("--seconds", type=float, default=None, help="give up after this long (DB_WAIT_SECONDS)")
    wait.set_defaults(handler=_db_wait)


def _doctor(options: dict[str, Any], out: Any) -> None:
    checks = run_checks()
    if not options["quiet"]:
        width = max(len(check.name) for check in checks)
        for check in checks:
            state = "ok" if check.ok else ("FAIL" if check.required else "warn")
            out.write(f"{check.name:<{width}}  {state:<4}  {check.latency_ms:7.1f} ms  {check.message}")
    failing = [check.name for check in checks if check.required and not check.ok]
    if not ready(checks):
        raise ConflictError(f"not ready: {', '.join(failing)}", code="not_ready", recoverable=True)
    if not options["quiet"]:
        out.write("ready")


def _db_wait(options: dict[str, Any], out: Any) -> None:
    seconds = settings.DB_WAIT_SECONDS if options["seconds"] is None else options["seconds"]
    try:
        waited = wait_for_database(seconds)
    except Exception as exc:  # OperationalError after the last attempt: one line and a non-zero exit
        raise DatabaseUnavailable(str(exc).splitlines()[0], code="database_unavailable") from None
    out.write(f"database reachable (waited {waited:.1f} s)")
