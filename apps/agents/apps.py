from __future__ import annotations

import logging

from django.apps import AppConfig

log = logging.getLogger("yokeflow.jail")


class AgentsConfig(AppConfig):
    name = "apps.agents"
    label = "agents"
    verbose_name = "Agent sessions"

    def ready(self) -> None:
        from django.conf import settings

        from apps.agents.jail import jail_check
        from apps.core import health

        if not any(name == "jail" for name, *_ in health.CHECKS):
            # Required with the jail on (without it every command is refused); a warning in the unsafe policy mode.
            health.CHECKS.append(("jail", jail_check, settings.SANDBOX == "jail"))
        if settings.SANDBOX == "policy":
            log.warning("UNSAFE: SANDBOX=policy: agent and member commands run without the jail, with the worker's "
                        "privileges; set SANDBOX=jail and install bubblewrap")
