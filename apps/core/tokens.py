"""Issuing and checking API bearer tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.core.audit import audit_record
from apps.core.errors import NotFoundError
from apps.core.models import ApiToken, AuditAction

TOKEN_PREFIX = "yf_"
# Recording every use would turn each read request into a write; once a minute is enough to audit.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def token_create(*, username: str, name: str = "") -> tuple[ApiToken, str]:
    """Create a token for `username`; returns the row and the raw token (never stored)."""
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise NotFoundError(f"no user named {username!r}", code="user_not_found")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(user=user, name=name, prefix=raw[:10], key_hash=_digest(raw))
        audit_record(action=AuditAction.TOKEN_CREATED, target=token.prefix, actor=user.get_username(),
                     details={"name": name})
    return token, raw


def token_authenticate(raw: str) -> AbstractBaseUser | None:
    if not raw.startswith(TOKEN_PREFIX):
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=_digest(raw), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        # Audited only with this throttled write, so a busy client adds one event a minute, not one per request;
        # the conditional update lets one of two simultaneous requests win, so the use is recorded once.
        stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
        with transaction.atomic():
            if ApiToken.objects.filter(stale, pk=token.pk).update(last_used_at=now):
                audit_record(action=AuditAction.TOKEN_USED, target=token.prefix, actor=token.user.get_username())
    return token.user


def token_revoke(*, token: ApiToken) -> None:
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
