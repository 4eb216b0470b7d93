"""Secrets at rest: a model field that stores its value encrypted (Fernet: AES-128-CBC + HMAC-SHA256).

Keys come from the environment: `ENCRYPTION_KEYS` is a comma-separated list of Fernet keys; the first encrypts,
every one decrypts, so a key is rotated by putting the new one first (and `yokeflow secrets rotate`-style
re-saving rewrites old rows). Without it the key is derived from `SECRET_KEY` with HKDF, so a development
machine works out of the box; changing `SECRET_KEY` then makes stored secrets unreadable (they read as empty
and the pages say so).

Values are never shown back in full: `mask()` keeps a recognisable end (`…3f9a`).
"""

from __future__ import annotations

import base64
import functools
import logging

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import models

from apps.core.redaction import remember

log = logging.getLogger(__name__)

PREFIX = "enc1:"  # stored values start with this; anything else is refused on read


def _derived_key() -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"yokeflow", info=b"field-encryption")
    return base64.urlsafe_b64encode(hkdf.derive(settings.SECRET_KEY.encode()))


@functools.cache
def _fernet(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    if keys:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    return MultiFernet([Fernet(_derived_key())])


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.ENCRYPTION_KEYS), settings.SECRET_KEY)


def encrypt(value: str) -> str:
    return PREFIX + fernet().encrypt(value.encode()).decode()


def decrypt(stored: str) -> str:
    """The plain value; an unreadable one (other key, tampered) reads as "" and is logged without the value."""
    if not stored.startswith(PREFIX):
        log.error("an encrypted field holds a value without the %r prefix; treated as empty", PREFIX)
        return ""
    try:
        return fernet().decrypt(stored[len(PREFIX):].encode()).decode()
    except InvalidToken:
        log.error("an encrypted field could not be decrypted with the configured keys; treated as empty")
        return ""


def mask(value: str | None, keep: int = 4) -> str:
    """`https://hooks.slack.com/services/T0/B0/abcd1234` → `https://hooks.slack.com/…1234`; "" stays ""."""
    if not value:
        return ""
    tail = value[-keep:] if len(value) > keep * 3 else ""
    if "://" in value:
        scheme, rest = value.split("://", 1)
        return f"{scheme}://{rest.split('/', 1)[0]}/…{tail}"
    return f"…{tail}" if tail else "…"


class EncryptedTextField(models.TextField):
    """A text column holding `enc1:<fernet token>`; Python code sees the plain value. Not searchable."""

    def from_db_value(self, value: str | None, expression: object, connection: object) -> str | None:
        if value in (None, ""):
            return value
        plain = decrypt(value)
        remember(plain)  # a secret read is a secret known: logs and transcripts will not show it
        return plain

    def get_prep_value(self, value: object) -> str | None:
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        return encrypt(str(value))
