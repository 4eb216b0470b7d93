"""Logins in the audit log, and the staff's unlock.

Throttling itself is django-axes (settings: AXES_*; LOGIN_FAILURE_LIMIT, LOGIN_LOCKOUT_MINUTES): it counts failures
per username and per address and refuses further tries while locked. This module records every success, failure
and lockout as an audit event, and lifts a lock for a username or an address (`yokeflow unlock`).
"""

from __future__ import annotations

import logging
from typing import Any

from axes.signals import user_locked_out
from axes.utils import reset
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from apps.core.audit import audit_record
from apps.core.errors import ValidationError
from apps.core.models import AuditAction

log = logging.getLogger(__name__)


@receiver(user_logged_in, dispatch_uid="yokeflow-login-succeeded")
def _succeeded(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    audit_record(action=AuditAction.LOGIN_SUCCEEDED, target=f"user {user.get_username()}",
                 actor=user.get_username())


@receiver(user_login_failed, dispatch_uid="yokeflow-login-failed")
def _failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    username = str(credentials.get("username", ""))[:150]  # Django already masks the password in `credentials`
    audit_record(action=AuditAction.LOGIN_FAILED, target=f"user {username}", actor=username or "anonymous")


@receiver(user_locked_out, dispatch_uid="yokeflow-login-locked-out")
def _locked_out(sender: Any, request: Any, username: str | None, ip_address: str | None, **kwargs: Any) -> None:
    log.warning("login locked out for %r from %s", username, ip_address)
    audit_record(action=AuditAction.LOGIN_LOCKED_OUT, target=f"user {username or ''}".strip(),
                 actor=(username or "anonymous")[:150], details={"ip_address": ip_address or ""})


def login_unlock(*, username: str = "", ip_address: str = "", by: str = "") -> int:
    """Forget the failed attempts of a username, an address, or both; returns how many records were removed."""
    if not username and not ip_address:
        raise ValidationError("name the username or the address to unlock", code="invalid_fields",
                              details={"fields": {"username": ["required without an address"]}})
    removed = 0
    if username:
        removed += reset(username=username)
    if ip_address:
        removed += reset(ip=ip_address)
    audit_record(action=AuditAction.LOGIN_UNLOCKED, target=f"user {username}" if username else f"address {ip_address}",
                 actor=by, details={"username": username, "ip_address": ip_address, "attempts_removed": removed})
    return removed
