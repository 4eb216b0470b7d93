from __future__ import annotations

from django.apps import AppConfig


class OrchestrationConfig(AppConfig):
    name = "apps.orchestration"
    label = "orchestration"
    verbose_name = "Runs"

    def ready(self) -> None:
        from apps.core import health
        from apps.orchestration import receivers
        from apps.orchestration.worker import orphans_check

        receivers.connect()
        if not any(name == "worker_orphans" for name, *_ in health.CHECKS):
            health.CHECKS.append(("worker_orphans", orphans_check, False))
