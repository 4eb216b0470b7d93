from __future__ import annotations

from django.apps import AppConfig


class OrchestrationConfig(AppConfig):
    name = "apps.orchestration"
    label = "orchestration"
    verbose_name = "Runs"

    def ready(self) -> None:
        from apps.core import health, metrics
        from apps.orchestration import receivers
        from apps.orchestration.worker import orphans_check

        receivers.connect()
        metrics.gauges_register("merges", _merge_gauges)
        if not any(name == "worker_orphans" for name, *_ in health.CHECKS):
            health.CHECKS.append(("worker_orphans", orphans_check, False))


def _merge_gauges():
    from prometheus_client.core import GaugeMetricFamily

    from apps.interventions.models import PausedSession
    from apps.orchestration.models import Worktree

    merges = GaugeMetricFamily("yokeflow_merges", "Worktree merges into main, and merge conflicts", labels=["result"])
    merges.add_metric(["merged"], Worktree.objects.exclude(merge_commit="").count())
    merges.add_metric(["conflict"], PausedSession.objects.filter(pause_type="merge_conflict").count())
    yield merges
