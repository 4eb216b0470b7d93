from __future__ import annotations

from django.apps import AppConfig


class InterventionsConfig(AppConfig):
    name = "apps.interventions"
    label = "interventions"
    verbose_name = "Interventions"

    def ready(self) -> None:
        from apps.core import metrics

        metrics.gauges_register("interventions", _intervention_gauges)


def _intervention_gauges():
    from django.db.models import Count

    from apps.core.metrics import grouped
    from apps.interventions.models import PausedSession

    yield grouped("yokeflow_interventions", "Pauses (interventions) recorded, by type", "type",
                  PausedSession.objects.values_list("pause_type").annotate(n=Count("pk")))
