"""Email is optional: without EMAIL_HOST (and DEBUG off) every send fails with the reason, so a project's email
channel is recorded as failed ("email is not configured") instead of mail vanishing or printing to a log."""

from __future__ import annotations

import smtplib
from collections.abc import Sequence

from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import EmailMessage


class UnconfiguredEmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        if not email_messages:
            return 0
        raise smtplib.SMTPException("email is not configured: set EMAIL_HOST (and EMAIL_USER, EMAIL_PASSWORD)")
