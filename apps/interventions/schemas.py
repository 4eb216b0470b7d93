"""API shapes for interventions (no __future__: ninja reads annotations at runtime).

Secrets never leave: webhook URLs and Twilio credentials are written through `NotificationPreferenceIn` and read
back only masked (`…1234`) with `*_set` flags.
"""

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from ninja import Field, Schema
from pydantic import StringConstraints, field_validator

from apps.core.validation import Text

Email = Annotated[str, StringConstraints(strip_whitespace=True, max_length=254,
                                         pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+[1-9]\d{6,14}$")]


class ActionOut(Schema):
    id: int
    action_type: str
    action_status: str
    action_details: dict
    created: datetime


class PauseOut(Schema):
    id: int
    session_id: int
    project_id: int
    project_slug: str = Field(alias="project.slug")
    pause_type: str
    pause_reason: str
    blocker_info: dict
    retry_stats: dict
    current_task_id: int | None
    current_task_key: str | None = Field(None, alias="current_task.key")
    current_task_description: str
    paused_at: datetime
    resolved: bool
    resolved_at: datetime | None
    resolved_by: str
    resolution_notes: str
    can_auto_resume: bool
    session_status: str = Field(alias="session.status")
    actions: list[ActionOut] = Field(alias="actions.all")


class ResumeIn(Schema):
    resolved_by: Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=150)]
    resolution_notes: Annotated[Text, StringConstraints(max_length=10_000)] = ""


class NotificationPreferenceIn(Schema):
    """Fields left out keep their value; an empty string clears a secret."""

    webhook_enabled: bool | None = None
    webhook_url: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] | None = None
    webhook_format: str | None = Field(None, pattern="^(auto|slack|discord|generic)$")
    email_enabled: bool | None = None
    email_addresses: list[Email] | None = Field(None, max_length=50)
    sms_enabled: bool | None = None
    sms_numbers: list[Phone] | None = Field(None, max_length=20)
    twilio_account_sid: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None = None
    twilio_auth_token: Annotated[str, StringConstraints(strip_whitespace=True, max_length=128)] | None = None
    twilio_from_number: Phone | None = None
    rotate_webhook_secret: bool | None = Field(None, description="Make a new signing secret (shown once).")
    notify_on_retry_limit: bool | None = None
    notify_on_critical_error: bool | None = None
    notify_on_timeout: bool | None = None
    notify_on_manual_pause: bool | None = None
    notify_on_budget: bool | None = None
    notify_on_merge_conflict: bool | None = None
    notify_on_rate_limit: bool | None = None
    min_notification_interval: int | None = Field(None, ge=0, le=7 * 24 * 3600)

    @field_validator("webhook_url")
    @classmethod
    def _https_or_http(cls, value: str | None) -> str | None:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value


class NotificationPreferenceOut(Schema):
    project_id: int
    webhook_enabled: bool
    webhook_url: str = Field(alias="webhook_url_masked")
    webhook_url_set: bool
    webhook_format: str
    email_enabled: bool
    email_addresses: list[str]
    sms_enabled: bool
    sms_numbers: list[str]
    twilio_account_sid: str = Field(alias="twilio_account_sid_masked")
    twilio_auth_token_set: bool
    twilio_from_number: str
    notify_on_retry_limit: bool
    notify_on_critical_error: bool
    notify_on_timeout: bool
    notify_on_manual_pause: bool
    notify_on_budget: bool
    notify_on_merge_conflict: bool
    notify_on_rate_limit: bool
    min_notification_interval: int
    last_notified_at: datetime | None
    webhook_secret: str | None = Field(None, description="The webhook signing secret (Standard Webhooks), only in the "
                                       "answer that created or rotated it: store it in the receiver now.")

    @staticmethod
    def resolve_webhook_secret(obj: Any) -> str | None:
        return getattr(obj, "new_webhook_secret", None)


class BudgetApproveIn(Schema):
    amount: Decimal = Field(gt=0, le=100000, max_digits=8, decimal_places=2,
                            description="Dollars added to the project's budget.")
    notes: Text = Field(default="", max_length=2000)


class BudgetApproveOut(Schema):
    budget_usd: Decimal
    previous_budget_usd: Decimal
    approved_usd: Decimal
    spent_usd: Decimal
    resumed: list[int] = Field(description="Budget pauses resolved: their sessions continue.")
    still_paused: list[int] = Field(description="Budget pauses the raise does not cover yet.")
