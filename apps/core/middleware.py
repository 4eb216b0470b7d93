"""Request middleware: the work context (correlation id from X-Request-ID or a new one, who, from where) and the
request metrics."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from apps.core import metrics
from apps.core.context import WorkContext, new_correlation_id, started

REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")  # anything else is replaced: it ends up in logs and commits


def client_address(request: HttpRequest) -> str:
    return request.META.get("REMOTE_ADDR", "") or "unknown"


class RequestContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.headers.get("X-Request-ID", "")
        correlation_id = given if REQUEST_ID.match(given) else new_correlation_id()
        user = getattr(request, "user", None)
        actor = user.get_username() if user is not None and user.is_authenticated else ""
        kind = "api" if request.path.startswith("/api/") else "web"
        context = WorkContext(correlation_id=correlation_id, actor=actor, origin=f"{kind} {client_address(request)}")
        request.correlation_id = correlation_id  # for the lines Django logs after this middleware returned
        start = time.perf_counter()
        with started(context):
            response = self.get_response(request)
        metrics.observe_request(request, response, time.perf_counter() - start)
        response["X-Request-ID"] = correlation_id
        return response
