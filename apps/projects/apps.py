from __future__ import annotations

from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "apps.projects"
    label = "projects"
    verbose_name = "Projects and plans"

    def ready(self) -> None:
        from apps.core import audit
        from apps.projects.selectors import projects_visible_to

        audit.visible_projects_register(lambda user: projects_visible_to(user).values("pk"))
