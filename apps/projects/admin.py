"""Admin for the plan. Querysets go through the same visibility selector as pages and the API."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.core.errors import YokeFlowError
from apps.projects.models import AcceptanceTest, Epic, Project, ProjectMembership, Task, TaskDependency
from apps.projects.selectors import projects_visible_to
from apps.projects.services import task_check_transition


class ProjectScopedAdmin(admin.ModelAdmin):
    """Limits rows to the projects the user may see; `project_path` is the lookup from the row."""

    project_path = "project"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        visible = projects_visible_to(request.user).values("pk")
        return super().get_queryset(request).filter(**{f"{self.project_path}__in": visible})


class MembershipInline(admin.TabularInline):
    model = ProjectMembership
    extra = 0
    autocomplete_fields = ["user"]


class EpicInline(admin.TabularInline):
    model = Epic
    extra = 0
    fields = ["key", "title", "priority", "position", "status"]
    show_change_link = True


@admin.register(Project)
class ProjectAdmin(ProjectScopedAdmin):
    project_path = "pk"
    list_display = ["name", "slug", "status", "owner", "strategy", "max_concurrency", "budget_usd", "created"]
    list_filter = ["status", "strategy", "merge_strategy", "parallel_enabled"]
    search_fields = ["name", "slug", "owner__username"]
    prepopulated_fields = {"slug": ["name"]}
    autocomplete_fields = ["owner"]
    inlines = [MembershipInline, EpicInline]


class TaskInline(admin.TabularInline):
    model = Task
    extra = 0
    fields = ["key", "title", "priority", "status", "domain", "estimate_minutes"]
    readonly_fields = ["status"]
    show_change_link = True


@admin.register(Epic)
class EpicAdmin(ProjectScopedAdmin):
    list_display = ["key", "title", "project", "priority", "status"]
    list_filter = ["status", "project"]
    search_fields = ["key", "title", "project__slug"]
    filter_horizontal = ["depends_on"]
    inlines = [TaskInline]


class TaskAdminForm(forms.ModelForm):
    """The admin builds the fields; this only checks a status change against the transition table."""

    def clean_status(self) -> str:
        status = self.cleaned_data["status"]
        if self.instance.pk and status != self.initial.get("status"):
            try:
                task_check_transition(self.initial["status"], status)
            except YokeFlowError as exc:
                raise forms.ValidationError(exc.message) from None
        return status


class AcceptanceTestInline(admin.TabularInline):
    model = AcceptanceTest
    extra = 0
    fields = ["position", "description", "command", "result", "last_run_at"]


class DependencyInline(admin.TabularInline):
    model = TaskDependency
    fk_name = "task"
    extra = 0
    autocomplete_fields = ["depends_on"]
    fields = ["depends_on", "kind", "origin"]


@admin.register(Task)
class TaskAdmin(ProjectScopedAdmin):
    form = TaskAdminForm
    list_display = ["key", "title", "project", "epic", "status", "domain", "priority", "estimate_minutes"]
    list_filter = ["status", "domain", "project"]
    search_fields = ["key", "title", "project__slug"]
    list_select_related = ["project", "epic"]
    raw_id_fields = ["epic"]
    readonly_fields = ["started_at", "completed_at"]
    inlines = [AcceptanceTestInline, DependencyInline]


@admin.register(TaskDependency)
class TaskDependencyAdmin(ProjectScopedAdmin):
    project_path = "task__project"
    list_display = ["task", "depends_on", "kind", "origin"]
    list_filter = ["kind", "origin"]
    search_fields = ["task__key", "depends_on__key"]
    list_select_related = ["task", "depends_on"]
    raw_id_fields = ["task", "depends_on"]


@admin.register(AcceptanceTest)
class AcceptanceTestAdmin(ProjectScopedAdmin):
    project_path = "task__project"
    list_display = ["description", "task", "result", "last_run_at"]
    list_filter = ["result"]
    search_fields = ["description", "command", "task__key"]
    raw_id_fields = ["task"]


@admin.register(ProjectMembership)
class ProjectMembershipAdmin(ProjectScopedAdmin):
    list_display = ["project", "user", "role"]
    list_filter = ["role"]
    search_fields = ["project__slug", "user__username"]
    autocomplete_fields = ["user"]
    raw_id_fields = ["project"]
