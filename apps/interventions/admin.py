"""Admin for interventions: pauses and their audit trail (read-only; a pause changes only through the Resume
action, which goes through the same service as the page and the API), notification preferences (secrets are
write-only: never rendered, blank keeps the stored value) and provider accounts (read-only)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from apps.agents.admin import ReadOnlyAdmin
from apps.core.admin import NoWriteMixin
from apps.core.errors import ConflictError, PermissionDeniedError, ValidationError, YokeFlowError
from apps.interventions.models import InterventionAction, NotificationPreference, PausedSession, ProviderAccount
from apps.interventions.services import (
    PREFERENCE_FIELDS,
    budget_approve,
    pause_resolve,
    preference_check,
    preference_update,
)
from apps.projects.admin import ProjectScopedAdmin
from apps.projects.permissions import Act, permission_require
from apps.projects.selectors import can_operate, projects_visible_to


class InterventionActionInline(NoWriteMixin, admin.TabularInline):
    model = InterventionAction
    extra = 0
    fields = ["created", "action_type", "action_status", "action_details"]
    readonly_fields = fields
    ordering = ["created", "pk"]


class BudgetActionForm(ActionForm):
    amount = forms.DecimalField(label="Approve +$", required=False, min_value=Decimal("0.01"),
                                max_value=Decimal("100000"), decimal_places=2,
                                help_text="for “Approve more budget”: dollars added to each selected project's budget")


@admin.register(PausedSession)
class PausedSessionAdmin(NoWriteMixin, ReadOnlyAdmin):
    list_display = ["id", "project", "session", "pause_type", "short_reason", "paused_at", "resolved",
                    "resolved_by"]
    list_filter = ["pause_type", "resolved", "project", "can_auto_resume"]
    search_fields = ["pause_reason", "project__slug", "current_task__key", "resolved_by", "resolution_notes"]
    list_select_related = ["project", "session"]
    date_hierarchy = "paused_at"
    inlines = [InterventionActionInline]
    actions = ["resume", "approve_budget"]
    action_form = BudgetActionForm

    @admin.display(description="reason")
    def short_reason(self, pause: PausedSession) -> str:
        reason = pause.pause_reason.splitlines()[0] if pause.pause_reason else ""
        return reason if len(reason) <= 80 else reason[:79] + "…"

    def has_resume_permission(self, request: HttpRequest) -> bool:
        # Resuming is the one change a pause allows; it needs the model's change right.
        return request.user.has_perm("interventions.change_pausedsession")

    @admin.action(description="Resume selected pauses", permissions=["resume"])
    def resume(self, request: HttpRequest, queryset: QuerySet[PausedSession]) -> None:
        by = request.user.get_username()
        for pause in queryset.select_related("project"):
            try:
                if not can_operate(request.user, pause.project):
                    raise PermissionDeniedError(f"you may not resume sessions of project {pause.project.slug!r}")
                resolved = pause_resolve(pause=pause, by=by, notes="resumed from the admin")
            except YokeFlowError as exc:  # reported per pause; the others still resume
                level = messages.WARNING if isinstance(exc, ConflictError) else messages.ERROR
                self.message_user(request, f"pause #{pause.pk} not resumed: {exc.message}", level)
            else:
                self.message_user(request, f"pause #{pause.pk}: session #{resolved.session_id} continues")

    @admin.action(description="Approve more budget (+$ amount) and resume", permissions=["resume"])
    def approve_budget(self, request: HttpRequest, queryset: QuerySet[PausedSession]) -> None:
        try:  # only the amount: the action field was checked by the admin already
            amount = BudgetActionForm.base_fields["amount"].clean(request.POST.get("amount", ""))
        except forms.ValidationError:
            amount = None
        if amount is None:
            self.message_user(request, "give the dollars to approve in the “Approve +$” field (0.01 to 100000)",
                              messages.ERROR)
            return
        projects = {pause.project_id: pause.project for pause in queryset.select_related("project")
                    if pause.pause_type == PausedSession.Type.BUDGET and not pause.resolved}
        if not projects:
            self.message_user(request, "none of the selected pauses waits for budget", messages.WARNING)
        for project in projects.values():
            try:
                permission_require(request.user, project, Act.BUDGET)
                result = budget_approve(project=project, amount=amount,
                                        by=request.user.get_username(), notes="approved from the admin")
            except YokeFlowError as exc:
                self.message_user(request, f"{project.slug}: budget not raised: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"{project.slug}: budget raised to ${result.budget_usd}; resumed "
                                  f"{len(result.resumed)} session(s), {len(result.still_paused)} still short")


@admin.register(InterventionAction)
class InterventionActionAdmin(NoWriteMixin, ReadOnlyAdmin):
    list_display = ["created", "action_type", "action_status", "project", "pause"]
    list_filter = ["action_type", "action_status", "project"]
    search_fields = ["project__slug"]
    list_select_related = ["project", "pause"]
    date_hierarchy = "created"

    def get_queryset(self, request: HttpRequest) -> QuerySet[InterventionAction]:
        # Actions about provider holds belong to no project; they are shown with the visible projects' rows.
        visible = projects_visible_to(request.user).values("pk")
        rows = admin.ModelAdmin.get_queryset(self, request)
        return rows.filter(Q(project__in=visible) | Q(project__isnull=True))


SECRET_FIELDS = ("webhook_url", "twilio_account_sid", "twilio_auth_token")


def _write_only(label: str) -> forms.CharField:
    return forms.CharField(label=label, required=False, strip=True,
                           widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}))


class NotificationPreferenceForm(forms.ModelForm):
    """The secrets are write-only inputs: the page never holds them, only a masked hint; blank keeps them."""

    webhook_url = _write_only("Webhook URL")
    twilio_account_sid = _write_only("Twilio account SID")
    twilio_auth_token = _write_only("Twilio auth token")
    clear_webhook_url = forms.BooleanField(label="Remove the stored webhook URL", required=False)
    clear_twilio_account_sid = forms.BooleanField(label="Remove the stored Twilio account SID", required=False)
    clear_twilio_auth_token = forms.BooleanField(label="Remove the stored Twilio auth token", required=False)

    class Meta:
        model = NotificationPreference
        fields = sorted(PREFERENCE_FIELDS | {"project"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        pref = self.instance
        hints = {"webhook_url": pref.webhook_url_masked,
                 "twilio_account_sid": pref.twilio_account_sid_masked,
                 "twilio_auth_token": "…" if pref.twilio_auth_token_set else ""}
        for name, hint in hints.items():
            stored = f"stored: {hint}" if hint else "none stored"
            self.fields[name].help_text = f"{stored}. Leave blank to keep it; type a new value to replace it."
            self.initial.pop(name, None)  # the stored secret never reaches the form's state

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for name in SECRET_FIELDS:
            if cleaned.get(f"clear_{name}"):
                cleaned[name] = ""
            elif not cleaned.get(name):
                cleaned[name] = getattr(self.instance, name) or ""
        probe = NotificationPreference(**{name: cleaned.get(name, getattr(self.instance, name))
                                          for name in ("webhook_enabled", "webhook_url", "email_enabled",
                                                       "email_addresses", "sms_enabled", "sms_numbers")})
        try:
            preference_check(probe)  # the service's own rule, so the form refuses what the service would
        except ValidationError as exc:
            for field, problems in exc.details.get("fields", {}).items():
                self.add_error(field if field in self.fields else None, "; ".join(problems))
        return cleaned


@admin.register(NotificationPreference)
class NotificationPreferenceAdmin(ProjectScopedAdmin):
    form = NotificationPreferenceForm
    list_display = ["project", "webhook_enabled", "webhook_url_masked", "webhook_format", "email_enabled",
                    "sms_enabled", "twilio_auth_token_set", "min_notification_interval", "last_notified_at"]
    list_filter = ["webhook_enabled", "email_enabled", "sms_enabled"]
    search_fields = ["project__slug"]
    list_select_related = ["project"]
    fieldsets = [
        (None, {"fields": ["project", "last_notified_at", "min_notification_interval"]}),
        ("Webhook", {"fields": ["webhook_enabled", "webhook_url", "clear_webhook_url", "webhook_format"]}),
        ("Email", {"fields": ["email_enabled", "email_addresses"]}),
        ("SMS", {"fields": ["sms_enabled", "sms_numbers", "twilio_account_sid", "clear_twilio_account_sid",
                            "twilio_auth_token", "clear_twilio_auth_token", "twilio_from_number"]}),
        ("When", {"fields": ["notify_on_retry_limit", "notify_on_critical_error", "notify_on_timeout",
                             "notify_on_manual_pause", "notify_on_budget", "notify_on_merge_conflict",
                             "notify_on_rate_limit"]}),
    ]

    @admin.display(description="webhook URL")
    def webhook_url_masked(self, pref: NotificationPreference) -> str:
        return pref.webhook_url_masked or "—"

    @admin.display(description="Twilio token set", boolean=True)
    def twilio_auth_token_set(self, pref: NotificationPreference) -> bool:
        return pref.twilio_auth_token_set

    def get_readonly_fields(self, request: HttpRequest, obj: NotificationPreference | None = None) -> list[str]:
        return ["project", "last_notified_at"] if obj is not None else ["last_notified_at"]

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "project":
            kwargs["queryset"] = projects_visible_to(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: NotificationPreference, form: forms.ModelForm,
                   change: bool) -> None:
        # Through the service, like the API: one place writes preferences (and logs which fields changed).
        saved = preference_update(project=obj.project,
                                  changes={name: getattr(obj, name) for name in PREFERENCE_FIELDS})
        obj.pk, obj.created, obj.updated = saved.pk, saved.created, saved.updated


@admin.register(ProviderAccount)
class ProviderAccountAdmin(NoWriteMixin, admin.ModelAdmin):
    list_display = ["fingerprint", "hold_kind", "hold_until", "held", "consecutive_failures", "updated"]
    list_filter = ["hold_kind"]
    search_fields = ["fingerprint"]
    readonly_fields = ["fingerprint", "hold_kind", "hold_reason", "hold_until", "consecutive_failures", "last_error"]

    @admin.display(boolean=True, description="held now")
    def held(self, account: ProviderAccount) -> bool:
        return account.held
