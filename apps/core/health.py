"""Health and readiness: each check says ok or not, why, and how long it took.

`/health` lists them all (200 when ready, 503 otherwise, with the list either way), `/ready` is the short answer
for load balancers, and `yokeflow doctor` prints the same as a table. Required checks decide readiness; the
others (workers, broker, provider key) are reported so an operator sees them, but a web process can serve pages
without them.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone

HEARTBEAT_NAME = "yokeflow-heartbeat"


@dataclass
class Check:
    name: str
    ok: bool
    message: str
    latency_ms: float
    required: bool


def _database() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True, f"{connection.vendor} answers"
    except DatabaseError as exc:
        connection.close()  # a broken connection must not be reused by the next request
        return False, f"{connection.vendor} unreachable: {str(exc).strip().splitlines()[0][:200]}"


def _workers() -> tuple[bool, str]:
    """The cluster's scheduler moves the heartbeat schedule forward every minute; stuck in the past = no cluster."""
    from django_q.models import Schedule

    schedule = Schedule.objects.filter(name=HEARTBEAT_NAME).first()
    if schedule is None:
        return False, "no heartbeat schedule (run `manage.py migrate`)"
    late = timezone.now() - schedule.next_run
    if late > timedelta(seconds=settings.HEALTH_WORKER_SECONDS):
        return False, f"no django-q2 cluster seen for {int(late.total_seconds())} s (start `manage.py yokeflow worker`)"
    return True, "a django-q2 cluster is running"


def _broker() -> tuple[bool, str]:
    from django_q.brokers import get_broker

    return True, f"{get_broker().queue_size()} jobs queued"


def _git() -> tuple[bool, str]:
    found = shutil.which("git")
    return (True, found) if found else (False, "git is not on PATH")


def _disk() -> tuple[bool, str]:
    root = Path(settings.PROJECTS_ROOT)
    probe = root if root.exists() else next((p for p in root.parents if p.exists()), Path("/"))
    free_mb = shutil.disk_usage(probe).free // (1024 * 1024)
    ok = free_mb >= settings.HEALTH_DISK_MIN_MB
    return ok, f"{free_mb} MB free under {probe}" + ("" if ok else f" (below {settings.HEALTH_DISK_MIN_MB} MB)")


def _provider() -> tuple[bool, str]:
    if settings.ANTHROPIC_API_KEY:
        return True, "ANTHROPIC_API_KEY is set"
    return False, "no ANTHROPIC_API_KEY: agents use the offline replay model"


CHECKS: list[tuple[str, Callable[[], tuple[bool, str]], bool]] = [
    ("database", _database, True), ("workers", _workers, False), ("broker", _broker, False),
    ("git", _git, True), ("disk", _disk, True), ("provider_key", _provider, False),
]
NEEDS_DATABASE = {"workers", "broker"}


def run_checks() -> list[Check]:
    results = []
    database_ok = True
    for name, check, required in CHECKS:
        start = time.perf_counter()
        if name in NEEDS_DATABASE and not database_ok:
            ok, message = False, "skipped: the database is unreachable"
        else:
            try:
                ok, message = check()
            except DatabaseError as exc:
                connection.close()
                ok, message = False, f"database error: {str(exc).strip().splitlines()[0][:200]}"
        database_ok = database_ok and (name != "database" or ok)
        results.append(Check(name, ok, message, round((time.perf_counter() - start) * 1000, 1), required))
    return results


def ready(checks: list[Check]) -> bool:
    return all(check.ok for check in checks if check.required)


def health_view(request: HttpRequest) -> JsonResponse:
    checks = run_checks()
    is_ready = ready(checks)
    return JsonResponse({"status": "ready" if is_ready else "not ready", "time": timezone.now().isoformat(),
                         "checks": [asdict(check) for check in checks]}, status=200 if is_ready else 503)


def ready_view(request: HttpRequest) -> JsonResponse:
    checks = run_checks()
    failing = [check.name for check in checks if check.required and not check.ok]
    return JsonResponse({"ready": not failing, "failing": failing}, status=503 if failing else 200)
