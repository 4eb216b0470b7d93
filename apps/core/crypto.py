"""Secrets at rest: a model field that stores its value encrypted (Fernet: AES-128-CBC + HMAC-SHA256).

Keys come from the environment: `ENCRYPTION_KEYS` is a comma-separated list of Fernet keys, kept apart from
`SECRET_KEY`; the first encrypts, every one decrypts. To rotate, put a new key first, run `yokeflow secrets
rotate` (every stored secret is re-encrypted with it), then drop the old key. Without `ENCRYPTION_KEYS` the key
is derived from `SECRET_KEY` with HKDF, so a development machine works out of the box (`check --deploy` warns
about it in production); that derived key stays a decryption fallback, so `secrets rotate` also moves a
deployment from it to real keys. A value no key can read reads as empty and is left as it is.

Values are never shown back in full: `mask()` keeps a recognisable end (`…3f9a`).
"""

from __future__ import annotations

import base64
import functools
import logging

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.apps import apps
from django.conf import settings
from django.db import connection, models, transaction

from apps.core.redaction import remember

log = logging.getLogger(__name__)

PREFIX = "enc1:"  # stored values start with this; anything else is refused on read


def _derived_key() -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"yokeflow", info=b"field-encryption")
    return base64.urlsafe_b64encode(hkdf.derive(settings.SECRET_KEY.encode()))


@functools.cache
def _fernet(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    derived = Fernet(_derived_key())
    return MultiFernet([*(Fernet(key.encode()) for key in keys), derived])  # derived: first only without keys


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


# ------------------------------------------------------------------------------------------------ rotation


def encrypted_columns() -> list[tuple[type[models.Model], str]]:
    """Every (model, column) holding an EncryptedTextField, across all installed apps."""
    return [(model, field.column) for model in apps.get_models() for field in model._meta.concrete_fields
            if isinstance(field, EncryptedTextField)]


def secrets_rotate() -> dict[str, int]:
    """Re-encrypt every stored secret with the first key, in one transaction. Values no key can read are counted
    and left untouched (never overwritten with an empty value)."""
    counts = {"rotated": 0, "unreadable": 0}
    keys, quote = fernet(), connection.ops.quote_name
    with transaction.atomic():
        for model, column in encrypted_columns():
            table, pk, col = quote(model._meta.db_table), quote(model._meta.pk.column), quote(column)
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT {pk}, {col} FROM {table} WHERE {col} LIKE %s", [PREFIX + "%"])
                for row_pk, stored in cursor.fetchall():
                    try:
                        token = keys.rotate(stored[len(PREFIX):].encode()).decode()
                    except InvalidToken:
                        counts["unreadable"] += 1
                        continue
                    cursor.execute(f"UPDATE {table} SET {col} = %s WHERE {pk} = %s",
                                   [PREFIX + token, row_pk])
                    counts["rotated"] += 1
    return counts
