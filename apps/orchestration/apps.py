from __future__ import annotations

from django.apps import AppConfig


class OrchestrationConfig(AppConfig):
    name = "apps.orchestration"
    label = "orchestration"
    verbose_name = "Runs"

    def ready(self) -> None:
        from apps.orchestration import receivers

        receivers.connect()
