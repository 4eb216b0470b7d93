"""Logging: structlog for our own lines and for every stdlib logger (Django, django-q2, httpx), one format.

Every line carries the work context (correlation id, actor, project, session, task) and goes through the
redaction processor. Production writes JSON lines (LOG_FORMAT=json), development readable ones. The level never
hides errors: LOG_LEVEL=CRITICAL still writes ERROR lines.
"""

from __future__ import annotations

import logging
import logging.config
import sys
from typing import Any

import structlog
from django.conf import settings

from apps.core.context import current
from apps.core.redaction import redact, redact_value

CONTEXT_FIELDS = ("correlation_id", "project_id", "session_id", "task_id", "actor")


def add_work_context(logger: Any, method: str, event: dict) -> dict:
    # Django logs a request's 4xx/5xx line after the middleware's context ended: it carries the request itself.
    request_id = getattr(getattr(event.get("_record"), "request", None), "correlation_id", None)
    if request_id:
        event["correlation_id"] = request_id
    context = current().as_dict()
    for name in CONTEXT_FIELDS:
        if event.get(name) is None and context.get(name) not in (None, ""):
            event[name] = context[name]
    return event


def redact_event(logger: Any, method: str, event: dict) -> dict:
    """Every field, the message and a formatted traceback alike."""
    for key, value in event.items():
        if key != "exc_info":
            event[key] = redact_value(value) if not isinstance(value, str) else redact(value)
    return event


def _shared() -> list:
    return [structlog.contextvars.merge_contextvars, structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True), add_work_context]


def _renderer() -> Any:
    if settings.LOG_FORMAT == "json":
        return structlog.processors.JSONRenderer(sort_keys=False)
    return structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())


def effective_level() -> str:
    """LOG_LEVEL, but never above ERROR: errors are always written."""
    return "ERROR" if settings.LOG_LEVEL == "CRITICAL" else settings.LOG_LEVEL


def structured_formatter(log_format: str | None = None) -> logging.Formatter:
    """The formatter every handler uses: context, redaction, then JSON or console rendering."""
    renderer = _renderer() if log_format is None else (
        structlog.processors.JSONRenderer() if log_format == "json" else structlog.dev.ConsoleRenderer(colors=False))
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, redact_event, renderer])


def configure() -> None:
    logging.config.dictConfig({
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"structured": {"()": structured_formatter}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
        "root": {"handlers": ["console"], "level": effective_level()},
        "loggers": {"django.db.backends": {"level": "INFO"}},  # SQL only when asked for explicitly
    })
    structlog.configure(
        processors=[*_shared(), structlog.stdlib.PositionalArgumentsFormatter(),
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
