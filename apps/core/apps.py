from __future__ import annotations

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from apps.core import logins  # noqa: F401 - connects the login audit receivers
        from apps.core.logging import configure
        from apps.core.redaction import remember_configured_secrets

        configure()
        remember_configured_secrets()
