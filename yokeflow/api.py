"""The one NinjaAPI: authentication, error mapping, and a router per app.

Every call needs a Django session (with CSRF for writes) or `Authorization: Bearer <token>`.
YokeFlow errors become JSON with the status from `apps.core.errors`; nothing a client sends can
produce a 500 through a known error path.
"""

from __future__ import annotations

import logging

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.security import HttpBearer, SessionAuth

from apps.agents.api import router as agents_router
from apps.core.context import update as context_update
from apps.core.errors import YokeFlowError, http_status
from apps.core.redaction import redact_value
from apps.core.tokens import token_authenticate
from apps.interventions.api import router as interventions_router
from apps.learning.api import router as learning_router
from apps.orchestration.api import router as orchestration_router
from apps.projects.api import router as projects_router

logger = logging.getLogger(__name__)


class BearerToken(HttpBearer):
    openapi_description = "A per-user API token: `python manage.py yokeflow token create USERNAME`."

    def authenticate(self, request: HttpRequest, token: str):
        user = token_authenticate(token)
        if user is not None:
            request.user = user  # selectors and services read request.user whatever the auth
            context_update(actor=user.get_username())  # logs and audit events name who called
        return user


api = NinjaAPI(
    title="YokeFlow API",
    version="1.0",
    description="Plans, tasks, dependency graphs and runs of autonomous coding agents.",
    auth=[BearerToken(), SessionAuth()],
    urls_namespace="api",
)


@api.exception_handler(YokeFlowError)
def yokeflow_error(request: HttpRequest, exc: YokeFlowError) -> HttpResponse:
    status = http_status(exc)
    if status >= 500:
        logger.error("api error %s: %s", exc.code, exc.message)
    return api.create_response(request, redact_value(exc.as_dict()), status=status)  # messages may quote output


@api.exception_handler(Http404)
def not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return api.create_response(request, {"error": "not_found", "message": str(exc) or "not found"}, status=404)


@api.exception_handler(AuthenticationError)
def unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    body = {"error": "unauthenticated", "message": "log in or send Authorization: Bearer <token>"}
    response = api.create_response(request, body, status=401)
    response["WWW-Authenticate"] = 'Bearer realm="yokeflow"'
    return response


@api.exception_handler(RequestDataTooBig)
def too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    body = {"error": "request_too_large", "message": "request body exceeds MAX_REQUEST_BYTES"}
    return api.create_response(request, body, status=413)


@api.exception_handler(HttpError)
def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if exc.status_code == 400 and str(exc).startswith("Cannot parse request body"):
        # An unparsable body is bad input like any other: 422, shaped like a field error on "body".
        detail = [{"loc": ["body"], "msg": "request body is not valid JSON", "type": "json_invalid"}]
        return api.create_response(request, {"detail": detail}, status=422)
    return api.create_response(request, {"error": "http_error", "message": str(exc)}, status=exc.status_code)


api.add_router("/projects", projects_router)
api.add_router("/", agents_router)
api.add_router("/", orchestration_router)
api.add_router("/", interventions_router)
api.add_router("/", learning_router)
