from __future__ import annotations

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from apps.core import checks, logins  # noqa: F401 - registers the deploy checks and the login receivers
        from apps.core.logging import configure
        from apps.core.redaction import remember_configured_secrets

        configure()
        remember_configured_secrets()
