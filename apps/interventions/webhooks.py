"""Outbound webhooks that receivers can trust and that cannot be aimed inside.

Signed per the Standard Webhooks specification: each delivery carries `webhook-id` (the same for every retry of one
message), `webhook-timestamp` (Unix seconds of this attempt) and `webhook-signature` ("v1," + base64 of
HMAC-SHA256 over "{id}.{timestamp}.{body}", keyed with the base64 part of the destination's "whsec_" secret).

Sent only to a destination whose every address is public, or inside WEBHOOK_ALLOWED_NETS (for receivers on a LAN):
checked when the URL is saved and again at each attempt, connecting to the address that was checked; a redirect is
an answer, never followed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid

from django.conf import settings

from apps.core.netguard import DestinationRefused, destination, networks, post_pinned

SECRET_PREFIX = "whsec_"


def webhook_secret_new() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def webhook_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def webhook_signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def webhook_headers(secret: str, message_id: str, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt (no signature without a secret)."""
    timestamp = int(time.time())
    headers = {"webhook-id": message_id, "webhook-timestamp": str(timestamp)}
    if secret:
        headers["webhook-signature"] = webhook_signature(secret, message_id, timestamp, body)
    return headers


def webhook_post(url: str, *, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, str]:
    """Check the destination again (its name may resolve elsewhere now) and POST to the checked address."""
    dest = destination(url, allowed=networks(settings.WEBHOOK_ALLOWED_NETS))
    return post_pinned(dest, body=body, headers=headers, timeout=timeout)


__all__ = ["DestinationRefused", "webhook_headers", "webhook_message_id", "webhook_post", "webhook_secret_new",
           "webhook_signature"]
