"""Prometheus metrics. In-process series (requests, LLM calls, tools, task durations) are recorded where things
happen; counts that live in the database (sessions by status, queue depth, interventions, merges) are read at
scrape time, so every process agrees on them.

Multi-process: with PROMETHEUS_MULTIPROC_DIR set (the container sets it), every gunicorn and django-q2 worker
process writes its samples to files there and `/metrics` merges them. Without it, one process's samples.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Callable, Iterable, Iterator

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)

REQUEST_SECONDS = Histogram("yokeflow_http_request_seconds", "Time to answer an HTTP request",
                            ["method", "route", "status"], buckets=SECONDS)
LLM_SECONDS = Histogram("yokeflow_llm_latency_seconds", "Latency of one model call", ["model"], buckets=SECONDS)
LLM_TOKENS = Counter("yokeflow_llm_tokens", "Tokens of model calls", ["model", "kind"])
LLM_COST = Counter("yokeflow_llm_cost_usd", "Dollars of model calls (replayed calls included)", ["model"])
TOOL_SECONDS = Histogram("yokeflow_tool_execution_seconds", "Time of one agent tool call", ["tool", "outcome"],
                         buckets=SECONDS)
TASK_SECONDS = Histogram("yokeflow_task_duration_seconds", "Claim to done of a task", buckets=SECONDS)


def observe_request(request: HttpRequest, response: HttpResponse, seconds: float) -> None:
    match = getattr(request, "resolver_match", None)
    route = match.route if match is not None and match.route else "unmatched"  # the pattern, not the path
    REQUEST_SECONDS.labels(request.method, route, str(response.status_code)).observe(seconds)


def observe_llm_call(*, model: str, seconds: float, usage: object, cost: object) -> None:
    LLM_SECONDS.labels(model).observe(seconds)
    for kind in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
        LLM_TOKENS.labels(model, kind.removesuffix("_tokens")).inc(getattr(usage, kind, 0) or 0)
    LLM_COST.labels(model).inc(float(cost or 0))


def observe_tool(*, tool: str, seconds: float, failed: bool) -> None:
    TOOL_SECONDS.labels(tool, "error" if failed else "ok").observe(seconds)


def observe_task_done(seconds: float) -> None:
    TASK_SECONDS.observe(max(0.0, seconds))


# What the apps that own data contribute to the scrape (registered from their AppConfig.ready: core imports no app).
GaugeSource = Callable[[], Iterable[GaugeMetricFamily]]
_gauge_sources: dict[str, GaugeSource] = {}


def gauges_register(name: str, source: GaugeSource) -> None:
    """Add (or replace) a source of gauges read from the database at scrape time."""
    _gauge_sources[name] = source


class DatabaseCollector:
    """Gauges read from the database when scraped: the queue's depth here, the rest from the registered sources."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from django_q.brokers import get_broker

        queue = GaugeMetricFamily("yokeflow_queue_depth", "Jobs waiting in the django-q2 queue")
        queue.add_metric([], get_broker().queue_size())
        yield queue
        for source in list(_gauge_sources.values()):
            yield from source()


def grouped(name: str, documentation: str, label: str, rows: Iterable[tuple[str, int]]) -> GaugeMetricFamily:
    """One gauge family from (label value, count) rows, e.g. a `values_list(...).annotate(n=Count(...))`."""
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for value, count in rows:
        family.add_metric([value], count)
    return family


def exposition() -> bytes:
    database = CollectorRegistry()
    database.register(DatabaseCollector())
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        processes = CollectorRegistry()
        multiprocess.MultiProcessCollector(processes)  # every process's files, merged
        return generate_latest(processes) + generate_latest(database)
    return generate_latest(REGISTRY) + generate_latest(database)


def allowed(request: HttpRequest) -> bool:
    """A bearer token equal to METRICS_TOKEN, or a client address inside METRICS_ALLOWED_NETS."""
    header = request.headers.get("Authorization", "")
    if settings.METRICS_TOKEN and header.startswith("Bearer "):
        return secrets.compare_digest(header[7:].strip(), settings.METRICS_TOKEN)
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in settings.METRICS_ALLOWED_NETS)


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not allowed(request):
        return HttpResponse("metrics need METRICS_TOKEN as a bearer token, or a client in METRICS_ALLOWED_NETS\n",
                            status=403, content_type="text/plain")
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
