"""Admin for expertise: read-only files (every change goes through the services, so it is versioned and in the
history) with their updates, and actions to validate them or scan the repository. Prices and costs are in the
agents admin, next to the sessions that wrote them."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from apps.core.admin import NoWriteMixin
from apps.core.errors import YokeFlowError
from apps.learning.expertise import render_markdown
from apps.learning.models import ExpertiseFile, ExpertiseUpdate
from apps.learning.services import self_improve, validate_expertise
from apps.projects.admin import ProjectScopedAdmin
from apps.projects.selectors import can_operate


class ExpertiseUpdateInline(NoWriteMixin, admin.TabularInline):
    model = ExpertiseUpdate
    extra = 0
    fields = ["created", "version", "change_type", "summary", "session", "author"]
    readonly_fields = fields
    ordering = ["-created", "-pk"]


@admin.register(ExpertiseFile)
class ExpertiseFileAdmin(NoWriteMixin, ProjectScopedAdmin):
    list_display = ["project", "domain", "version", "line_count", "validated_at", "updated"]
    list_filter = ["domain", "project"]
    search_fields = ["project__slug"]
    list_select_related = ["project"]
    fields = ["project", "domain", "version", "line_count", "validated_at", "markdown"]
    readonly_fields = fields
    inlines = [ExpertiseUpdateInline]
    actions = ["validate", "improve"]

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_maintain_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("learning.view_expertisefile")

    @admin.display(description="content")
    def markdown(self, file: ExpertiseFile) -> str:
        return format_html("<pre style='white-space: pre-wrap'>{}</pre>", render_markdown(file.content))

    def _each(self, request: HttpRequest, queryset: QuerySet[ExpertiseFile],
              act: Callable[..., ExpertiseUpdate]) -> None:
        for file in queryset.select_related("project"):
            if not can_operate(request.user, file.project):
                self.message_user(request, f"{file}: you may not change project {file.project.slug!r}",
                                  messages.ERROR)
                continue
            try:
                update = act(expertise=file)
            except YokeFlowError as exc:
                self.message_user(request, f"{file}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"{file.project.slug}/{file.domain} v{update.version}: {update.summary}")

    @admin.action(description="Validate (drop missing files and stale failures)", permissions=["maintain"])
    def validate(self, request: HttpRequest, queryset: QuerySet[ExpertiseFile]) -> None:
        self._each(request, queryset, validate_expertise)

    @admin.action(description="Scan the repository for the domain's files", permissions=["maintain"])
    def improve(self, request: HttpRequest, queryset: QuerySet[ExpertiseFile]) -> None:
        self._each(request, queryset, self_improve)


@admin.register(ExpertiseUpdate)
class ExpertiseUpdateAdmin(NoWriteMixin, ProjectScopedAdmin):
    project_path = "expertise__project"
    list_display = ["created", "expertise", "version", "change_type", "summary", "session", "author"]
    list_filter = ["change_type", "expertise__domain"]
    list_select_related = ["expertise__project", "session", "author"]
    fields = ["expertise", "version", "change_type", "summary", "session", "author", "created", "diff_view"]
    readonly_fields = fields

    @admin.display(description="diff")
    def diff_view(self, update: ExpertiseUpdate) -> str:
        return format_html("<pre style='white-space: pre-wrap'>{}</pre>", update.diff or "(no change)")
