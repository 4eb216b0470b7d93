"""Admin for sessions (read-only, scoped to visible projects, with a cancel action) and editable model prices."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.agents.models import AgentCost, AgentSession, ModelPrice
from apps.agents.services import session_request_cancel
from apps.core.errors import YokeFlowError
from apps.projects.admin import ProjectScopedAdmin


class ReadOnlyAdmin(ProjectScopedAdmin):
    """Sessions and costs are written by the runtime only: the admin shows them, never edits them."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(AgentSession)
class AgentSessionAdmin(ReadOnlyAdmin):
    list_display = ["id", "project", "task", "kind", "status", "model_label", "turns", "input_tokens",
                    "output_tokens", "cost_usd", "stop_reason", "created"]
    list_filter = ["status", "kind", "provider"]
    search_fields = ["project__slug", "task__key", "error"]
    list_select_related = ["project", "task"]
    actions = ["cancel"]

    @admin.action(description="Cancel the selected sessions")
    def cancel(self, request: HttpRequest, queryset: QuerySet[AgentSession]) -> None:
        for session in queryset:
            try:
                session_request_cancel(session=session)
            except YokeFlowError as exc:
                self.message_user(request, f"session {session.pk}: {exc.message}", messages.WARNING)
            else:
                self.message_user(request, f"session {session.pk}: cancel requested")


@admin.register(AgentCost)
class AgentCostAdmin(ReadOnlyAdmin):
    list_display = ["created", "project", "session", "model", "turn", "input_tokens", "output_tokens",
                    "cache_read_tokens", "cache_write_tokens", "cost_usd", "simulated", "long_prompt"]
    list_filter = ["model", "simulated"]
    list_select_related = ["project", "session"]


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    list_display = ["model", "tier", "effective_from", "input_per_mtok", "output_per_mtok",
                    "cache_write_5m_per_mtok", "cache_write_1h_per_mtok", "cache_read_per_mtok",
                    "long_prompt_threshold", "legacy"]
    list_filter = ["tier", "legacy"]
    search_fields = ["model"]
