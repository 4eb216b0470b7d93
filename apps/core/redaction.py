"""Secrets out of logs, transcripts and error messages.

Two nets: patterns for the shapes secrets take (Anthropic keys, bearer tokens, `password=…`, webhook URLs, Twilio
credentials), and the exact values this process knows to be secret — the configured keys and every value an
encrypted field decrypts (notification webhooks, SMS tokens), registered as they are read.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "[redacted]"
MIN_SECRET_LENGTH = 8  # shorter values would blank ordinary words

PATTERNS = [
    # PEM private keys, whole (a key cut off at the end of a text is masked to the end)
    re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----[\s\S]*?"
               r"(?:-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----|$)"),
    re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}"),  # Anthropic API keys
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=\-]{8,}"),  # Authorization: Bearer …
    re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{22,255})\b"),  # GitHub tokens, all kinds
    re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"),  # AWS access key ids (their secrets: the next pattern)
    re.compile(r"\bxox[abposre]-[A-Za-z0-9-]{10,}|\bxapp-\d-[A-Za-z0-9-]{10,}"),  # Slack bot/user/app tokens
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),  # JWTs
    # NAME=value and NAME: value where the name says secret (AWS_SECRET_ACCESS_KEY=…, DB_PASSWORD: …, api-key=…);
    # a bare number ("tokens: 12000") is not a secret
    re.compile(r"(?i)\b[A-Z0-9_.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|"
               r"credentials?)[A-Z0-9_]*\s*[=:]\s*[\"']?(?![\d.,]+\b)[^\s\"',;&]{4,}"),
    re.compile(r"(?i)\"[A-Z0-9_-]*(?:password|secret|token|api_?key|access_?key|private_?key)[A-Z0-9_-]*\"\s*:\s*"
               r"\"[^\"]+\""),
    re.compile(r"https://hooks\.slack\.com/[^\s\"']+"),  # webhook URLs carry their own credential
    re.compile(r"https://(?:discord(?:app)?\.com|[\w.-]*\.webhook\.office\.com)/[^\s\"']*webhook[^\s\"']*", re.I),
    re.compile(r"\bAC[0-9a-f]{32}\b"),  # Twilio account SID
    re.compile(r"(?i)(?<=://)[^\s\"'/@:]*:[^\s\"'/@]+(?=@)"),  # user:password@ in a URL of any scheme
]

_known: set[str] = set()


def remember(value: str | None) -> None:
    """Treat this exact value as a secret from now on (configured keys, decrypted fields)."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        _known.add(value)


def redact(text: str) -> str:
    if not text:
        return text
    for secret in sorted(_known, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern in PATTERNS:
        text = pattern.sub(MASK, text)
    return text


def redact_value(value: Any) -> Any:
    """`redact` through dicts and lists (event payloads, log fields); other values are returned as they are."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(item) for item in value]
    return value


def remember_configured_secrets() -> None:
    from django.conf import settings

    for name in ("ANTHROPIC_API_KEY", "SECRET_KEY", "METRICS_TOKEN", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"):
        remember(getattr(settings, name, None))
    remember(settings.MAILERS.get("default", {}).get("OPTIONS", {}).get("password"))
    for secret in settings.ENCRYPTION_KEYS:
        remember(secret)
