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
        from apps.core import health, metrics

        if not any(name == "jail" for name, *_ in health.CHECKS):
            # Required with the jail on (without it every command is refused); a warning in the unsafe policy mode.
            health.CHECKS.append(("jail", jail_check, settings.SANDBOX == "jail"))
        metrics.gauges_register("sessions", _session_gauges)
        if settings.SANDBOX == "policy":
            log.warning("UNSAFE: SANDBOX=policy: agent and member commands run without the jail, with the worker's "
                        "privileges; set SANDBOX=jail and install bubblewrap")


def _session_gauges():
    from django.db.models import Count

    from apps.agents.models import AgentSession
    from apps.core.metrics import grouped

    yield grouped("yokeflow_sessions", "Agent sessions by status", "status",
                  AgentSession.objects.values_list("status").annotate(n=Count("pk")))
