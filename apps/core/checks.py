"""System checks of YokeFlow's own settings that `manage.py check --deploy` reports."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def encryption_keys_check(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    if settings.ENCRYPTION_KEYS:
        return []
    return [Warning(
        "ENCRYPTION_KEYS is not set: secrets stored in the database are encrypted with a key derived from "
        "SECRET_KEY, so the two cannot be rotated apart.",
        hint="Set ENCRYPTION_KEYS to a Fernet key (python -c \"from cryptography.fernet import Fernet; "
             "print(Fernet.generate_key().decode())\"), then run `manage.py yokeflow secrets rotate`.",
        id="yokeflow.W001")]
