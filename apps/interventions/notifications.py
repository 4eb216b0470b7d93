"""Telling people that a session paused: a webhook (Slack, Discord or generic JSON), one email to every address
and one SMS per number (Twilio's REST API).

`notify_pause` never raises for a channel's failure: every attempt ends as an audit row (`InterventionAction`
of type `notification`), ok, failed or skipped. The channels are sent concurrently from worker threads that
never touch the database (a thread would open its own connection, outside the caller's transaction and never
closed); the rows are written afterwards in the calling thread. Secrets (webhook URLs, Twilio SID and token) are
only ever stored, logged or shown masked.
"""

from __future__ import annotations

import base64
import json
import logging
import smtplib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, mailers
from django.core.mail.backends.base import BaseEmailBackend
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from apps.core.crypto import mask
from apps.interventions.messages import mask_phone, pause_message, sms_body, webhook_format_for, webhook_payload
from apps.interventions.models import (
    ActionStatus,
    ActionType,
    InterventionAction,
    NotificationPreference,
    PausedSession,
)
from apps.interventions.services import action_record
from apps.interventions.webhooks import DestinationRefused, webhook_headers, webhook_message_id, webhook_post

log = logging.getLogger(__name__)


USER_AGENT = "YokeFlow"


MAX_WORKERS = 8  # one thread per job up to this; a project rarely has more recipients


MAX_BACKOFF = 60.0  # seconds: doubling from NOTIFY_BACKOFF never waits longer than this between tries


class SendError(Exception):
    """One failed attempt. `message` is safe to store: it never holds a URL, a token or a message body."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = True) -> None:
        super().__init__(message)
        self.message = message[:200]
        self.status = status
        self.retryable = retryable


@dataclass(frozen=True)
class Job:
    """One delivery: `send` makes one attempt and returns the HTTP status (None for email). `target` is masked.
    A job with a `problem` cannot be sent (missing configuration) and makes no request."""

    channel: str
    format: str
    target: str
    send: Callable[[], int | None] | None = None
    problem: str = ""


@dataclass(frozen=True)
class Outcome:
    ok: bool
    attempts: int
    status: int | None = None
    error: str = ""


@dataclass(frozen=True)
class RetryPolicy:
    """Read from settings in the calling thread, so worker threads never consult (overridable) settings."""

    tries: int
    backoff: float
    timeout: float

    @classmethod
    def from_settings(cls) -> RetryPolicy:
        return cls(tries=settings.NOTIFY_RETRIES, backoff=settings.NOTIFY_BACKOFF, timeout=settings.NOTIFY_TIMEOUT)


def notify_pause(*, pause: PausedSession) -> list[InterventionAction]:
    """Tell the project's people that `pause` happened, on every enabled channel; one audit row per delivery."""
    pref = NotificationPreference.objects.filter(project_id=pause.project_id).first()
    if pref is None:
        return [_skipped(pause, reason="no_preferences", detail="the project has no notification preferences")]
    if not pref.wants(pause.pause_type):
        return [_skipped(pause, reason="not_wanted", detail=f"notifications for {pause.pause_type} are off")]
    message = pause_message(pause=pause)
    policy = RetryPolicy.from_settings()
    jobs = _jobs(pref=pref, message=message, policy=policy)
    if not jobs:
        return [_skipped(pause, reason="no_channel", detail="no notification channel is enabled")]
    next_allowed_at = _claim_slot(pref)
    if next_allowed_at is not None:
        return [_skipped(pause, reason="rate_limited", next_allowed_at=next_allowed_at.isoformat())]
    outcomes = _send_all(jobs, policy)
    return [_record(pause, job, outcome) for job, outcome in zip(jobs, outcomes, strict=True)]


def _skipped(pause: PausedSession, *, reason: str, **details: str) -> InterventionAction:
    log.info("notification for pause %s skipped: %s", pause.pk, reason)
    return action_record(pause=pause, action_type=ActionType.NOTIFICATION, status=ActionStatus.SKIPPED,
                         details={"reason": reason, **details})


def _claim_slot(pref: NotificationPreference) -> datetime | None:
    """Take the project's notification slot with one conditional UPDATE, so two workers never both send.

    Returns None when claimed, else when the next notification is allowed."""
    now = timezone.now()
    interval = timedelta(seconds=pref.min_notification_interval)
    due = Q(last_notified_at__isnull=True) | Q(last_notified_at__lte=now - interval)
    if NotificationPreference.objects.filter(pk=pref.pk).filter(due).update(last_notified_at=now) == 1:
        return None
    last = NotificationPreference.objects.filter(pk=pref.pk).values_list("last_notified_at", flat=True).first()
    return (last or now) + interval


def _record(pause: PausedSession, job: Job, outcome: Outcome) -> InterventionAction:
    status = ActionStatus.OK if outcome.ok else ActionStatus.FAILED
    details = {"channel": job.channel, "format": job.format, "target": job.target,
               "attempts": outcome.attempts, "http_status": outcome.status, "error": outcome.error}
    if outcome.ok:
        log.info("notification for pause %s via %s to %s sent (attempts: %d)", pause.pk, job.channel, job.target,
                 outcome.attempts)
    else:
        log.warning("notification for pause %s via %s to %s failed (attempts: %d): %s", pause.pk, job.channel,
                    job.target, outcome.attempts, outcome.error)
    return action_record(pause=pause, action_type=ActionType.NOTIFICATION, status=status, details=details)


def _jobs(*, pref: NotificationPreference, message: dict[str, Any], policy: RetryPolicy) -> list[Job]:
    jobs = []
    if pref.webhook_enabled:
        jobs.append(_webhook_job(pref=pref, message=message, policy=policy))
    if pref.email_enabled:
        jobs.append(_email_job(pref=pref, message=message))
    if pref.sms_enabled:
        jobs.extend(_sms_jobs(pref=pref, message=message, policy=policy))
    return jobs


def _webhook_job(*, pref: NotificationPreference, message: dict[str, Any], policy: RetryPolicy) -> Job:
    url = pref.webhook_url
    fmt = webhook_format_for(url=url, fmt=pref.webhook_format)
    if not url:
        return Job(channel="webhook", format=fmt, target="", problem="the webhook URL is not set (or unreadable)")
    body = json.dumps(webhook_payload(message=message, fmt=fmt)).encode()
    secret, message_id = pref.webhook_secret, webhook_message_id()  # one id for every retry of this message

    def send() -> int:
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   **webhook_headers(secret, message_id, body)}
        return _webhook_send(url, body=body, headers=headers, timeout=policy.timeout)

    return Job(channel="webhook", format=fmt, target=mask(url), send=send)


def _webhook_send(url: str, *, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """One signed POST to a checked destination; a redirect is not followed (and not retried)."""
    try:
        status, reason = webhook_post(url, body=body, headers=headers, timeout=timeout)
    except DestinationRefused as exc:
        raise SendError(f"destination refused: {exc}", retryable=False) from None
    except TimeoutError:
        raise SendError(f"no answer within {timeout:g} s") from None
    except OSError as exc:  # refused, reset, TLS; the message never holds the URL
        raise SendError(f"connection failed: {exc.strerror or type(exc).__name__}") from None
    except ValueError:
        raise SendError("the URL is not valid", retryable=False) from None
    if 300 <= status < 400:
        raise SendError(f"HTTP {status} {reason}: redirects are not followed", status=status, retryable=False)
    if status >= 400:
        raise SendError(f"HTTP {status} {reason}", status=status, retryable=status == 429 or status >= 500)
    return status


def _email_job(*, pref: NotificationPreference, message: dict[str, Any]) -> Job:
    addresses = [address for address in pref.email_addresses or [] if address]
    target = ", ".join(addresses)
    if not addresses:
        return Job(channel="email", format="text+html", target="", problem="no email addresses are set")
    email = EmailMultiAlternatives(subject=message["title"], body=render_to_string(
        "interventions/email/pause.txt", message), from_email=settings.DEFAULT_FROM_EMAIL, to=addresses)
    email.attach_alternative(render_to_string("interventions/email/pause.html", message), "text/html")
    mailer = mailers.default  # created here: reading MAILERS belongs to the calling thread
    return Job(channel="email", format="text+html", target=target, send=lambda: send_email(email, mailer=mailer))


def _sms_jobs(*, pref: NotificationPreference, message: dict[str, Any], policy: RetryPolicy) -> list[Job]:
    numbers = [number for number in pref.sms_numbers or [] if number]
    sid = pref.twilio_account_sid or settings.TWILIO_ACCOUNT_SID or ""
    token = pref.twilio_auth_token or settings.TWILIO_AUTH_TOKEN or ""
    sender = pref.twilio_from_number or settings.TWILIO_FROM_NUMBER or ""
    if not numbers:
        return [Job(channel="sms", format="twilio", target="", problem="no SMS numbers are set")]
    if not (sid and token and sender):
        targets = ", ".join(mask_phone(number) for number in numbers)
        return [Job(channel="sms", format="twilio", target=targets, problem="SMS credentials are not configured")]
    url = f"{settings.TWILIO_API_BASE}/2010-04-01/Accounts/{urllib.parse.quote(sid)}/Messages.json"
    auth = "Basic " + base64.b64encode(f"{sid}:{token}".encode()).decode()
    text = sms_body(message=message)
    return [_sms_job(url=url, auth=auth, sender=sender, number=number, text=text, policy=policy)
            for number in numbers]


def _sms_job(*, url: str, auth: str, sender: str, number: str, text: str, policy: RetryPolicy) -> Job:
    body = urllib.parse.urlencode({"To": number, "From": sender, "Body": text}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": auth}
    return Job(channel="sms", format="twilio", target=mask_phone(number),
               send=lambda: http_post(url, body=body, headers=headers, timeout=policy.timeout))


def http_post(url: str, *, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """One POST; a status >= 400 or a connection problem raises SendError (retryable: 429, 5xx, connection)."""
    request = urllib.request.Request(url, data=body, headers={"User-Agent": USER_AGENT, **headers}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        exc.close()
        # The response body is not kept: providers echo phone numbers and request details in their errors.
        raise SendError(f"HTTP {exc.code} {exc.reason}", status=exc.code,
                        retryable=exc.code == 429 or exc.code >= 500) from None
    except urllib.error.URLError as exc:  # refused, DNS, TLS; the reason never holds the URL
        raise SendError(f"connection failed: {exc.reason}") from None
    except TimeoutError:
        raise SendError(f"no answer within {timeout:g} s") from None
    except OSError as exc:  # a reset or broken connection mid-response
        raise SendError(f"connection failed: {exc.strerror or type(exc).__name__}") from None
    except ValueError:  # a malformed URL; its message would quote the URL
        raise SendError("the URL is not valid", retryable=False) from None


def send_email(email: EmailMultiAlternatives, *, mailer: BaseEmailBackend) -> None:
    """Send through `mailer` (the MAILERS["default"] backend); refusals are final, connection problems retried."""
    try:
        mailer.send_messages([email])
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPAuthenticationError) as exc:
        raise SendError(f"mail refused: {type(exc).__name__}", retryable=False) from None
    except OSError as exc:  # smtplib's other errors are OSErrors too: a server hiccup, worth another try
        raise SendError(f"mail failed: {type(exc).__name__}: {exc}") from None


def _send_all(jobs: list[Job], policy: RetryPolicy) -> list[Outcome]:
    with ThreadPoolExecutor(max_workers=min(len(jobs), MAX_WORKERS), thread_name_prefix="notify") as pool:
        return list(pool.map(lambda job: _deliver(job, policy), jobs))


def _deliver(job: Job, policy: RetryPolicy) -> Outcome:
    if job.send is None:
        return Outcome(ok=False, attempts=0, error=job.problem)
    attempts, status = 0, None
    try:
        for attempt in _retrying(policy):
            with attempt:
                attempts = attempt.retry_state.attempt_number
                status = job.send()
    except SendError as exc:
        return Outcome(ok=False, attempts=attempts, status=exc.status, error=exc.message)
    except Exception as exc:  # a bug must not cost the other channels their audit rows; logged without values
        log.error("notification via %s to %s raised %s", job.channel, job.target, type(exc).__name__)
        return Outcome(ok=False, attempts=attempts, error=f"unexpected {type(exc).__name__}")
    return Outcome(ok=True, attempts=attempts, status=status)


def _retrying(policy: RetryPolicy) -> Retrying:
    return Retrying(
        stop=stop_after_attempt(policy.tries),
        wait=wait_exponential(multiplier=policy.backoff, max=MAX_BACKOFF),
        retry=retry_if_exception(lambda exc: isinstance(exc, SendError) and exc.retryable),
        reraise=True,
    )
