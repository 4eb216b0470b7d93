"""The one NinjaAPI: authentication, error mapping, and a router per app.

Every call needs a Django session (with CSRF for writes) or `Authorization: Bearer <token>`.
YokeFlow errors become JSON with the status from `apps.core.errors`; nothing a client sends can
produce a 500 through a known error path.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.parser import Parser
from ninja.security import HttpBearer, SessionAuth

from apps.agents.api import router as agents_router
from apps.core.context import update as context_update
from apps.core.errors import YokeFlowError, http_status
from apps.core.redaction import redact_value
from apps.core.tokens import token_authenticate
from apps.core.validation import text_refusal
from apps.interventions.api import router as interventions_router
from apps.learning.api import router as learning_router
from apps.orchestration.api import router as orchestration_router
from apps.projects.api import router as projects_router

logger = logging.getLogger(__name__)


class TextRefused(ValueError):
    def __init__(self, loc: tuple[str | int, ...], problem: str) -> None:
        super().__init__(problem)
        self.loc, self.problem = loc, problem


class StrictParser(Parser):
    """JSON bodies whose every string (and key) can be stored: a NUL or a lone surrogate anywhere is a 422."""

    def parse_body(self, request: HttpRequest) -> Any:
        data = json.loads(request.body)
        if found := text_refusal(data):
            raise TextRefused(*found)
        return data


class BearerToken(HttpBearer):
    openapi_description = "A per-user API token: `python manage.py yokeflow token create USERNAME`."

    def authenticate(self, request: HttpRequest, token: str):
        user = token_authenticate(token)
        if user is not None:
            request.user = user  # selectors and services read request.user whatever the auth
            context_update(actor=user.get_username())  # logs and audit events name who called
        return user


ERROR_CODES = {
    401: "Not authenticated: log in, or send `Authorization: Bearer <token>`.",
    403: "Authenticated, but this role may not do this (the message names the role and the act).",
    404: "Not found, or not visible to this user (the two are not told apart).",
    409: "Refused by the current state (already running, already resolved, a conflict…).",
    413: "The request body is larger than MAX_REQUEST_BYTES.",
    422: "Invalid input: the fields and why (NUL characters and lone surrogates included).",
}
ERROR_SCHEMA = {"type": "object", "description": "An error: `error` and `message`, or `detail` for field errors.",
                "properties": {"error": {"type": "string"}, "message": {"type": "string"},
                               "details": {"type": "object"}, "detail": {"type": "array", "items": {"type": "object"}}}}


class YokeFlowAPI(NinjaAPI):
    def get_openapi_schema(self, *args: Any, **kwargs: Any) -> Any:
        """The schema with every error status an operation can answer declared, so clients (and fuzzers) can
        rely on it: 401 everywhere; 404 with a path parameter or an id filter; 422 with any input; 403 and 409
        on writes; 413 with a body."""
        schema = super().get_openapi_schema(*args, **kwargs)
        schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
        for path, item in schema.get("paths", {}).items():
            for method, operation in item.items():
                for code in _error_codes(path, method, operation):
                    operation.setdefault("responses", {}).setdefault(str(code), {
                        "description": ERROR_CODES[code],
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
        return schema


def _error_codes(path: str, method: str, operation: dict) -> set[int]:
    codes = {401}
    names = [parameter.get("name", "") for parameter in operation.get("parameters", [])]
    if "{" in path or any(name.endswith("id") for name in names):  # a path, or a filter, naming something
        codes.add(404)
    if operation.get("parameters") or operation.get("requestBody"):
        codes.add(422)
    if method in ("post", "put", "patch", "delete"):
        codes |= {403, 409, 422}
    if operation.get("requestBody"):
        codes.add(413)
    return codes


def docs_with_token(view: Callable) -> Callable:
    """The schema and the docs page for a session or a bearer token (API clients load the schema with theirs);
    a browser without either is sent to log in, a bad token gets 401."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        header = request.headers.get("Authorization", "")
        if header:
            user = token_authenticate(header[7:].strip()) if header[:7].lower() == "bearer " else None
            if user is None:
                return JsonResponse({"error": "unauthenticated", "message": "the bearer token is not valid"},
                                    status=401, headers={"WWW-Authenticate": 'Bearer realm="yokeflow"'})
            request.user = user
        elif not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return login_not_required(wrapped)


api = YokeFlowAPI(
    title="YokeFlow API",
    version="1.0",
    description="Plans, tasks, dependency graphs and runs of autonomous coding agents.",
    auth=[BearerToken(), SessionAuth()],
    urls_namespace="api",
    parser=StrictParser(),
    docs_decorator=docs_with_token,
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
    if isinstance(exc.__cause__, TextRefused):
        refused = exc.__cause__
        detail = [{"loc": ["body", *refused.loc], "msg": refused.problem, "type": "string_unstorable"}]
        return api.create_response(request, {"detail": detail}, status=422)
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
