"""The API under a schema-driven fuzzer (schemathesis, generated from our own OpenAPI document, fixed seed,
bounded examples): no input answers with a server error, and every status answered is one the document
declares. Requests go in-process to the WSGI application with a real bearer token."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error, status_code_conformance

from apps.core.tokens import token_create
from apps.projects.plan import plan_import
from yokeflow.api import api

SCHEMA = schemathesis.openapi.from_dict(api.get_openapi_schema())
APP = get_wsgi_application()
EXAMPLES = 60  # per operation: with 54 operations about 3,000 requests (~50 s)


@pytest.fixture
def token(owner, project, example_plan, settings):
    """A bearer token of the project's owner. The requests run inside the test's transaction, so, as Django's own
    test client does, a request must not close the database connection when it starts or ends."""
    settings.ALLOWED_HOSTS = ["localhost"]  # the host schemathesis's WSGI requests name
    plan_import(project=project, data=example_plan)
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield token_create(username=owner.username)[1]
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.mark.slow
@pytest.mark.django_db
@SCHEMA.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
def test_no_input_makes_a_server_error_or_an_undeclared_status(case, token):
    case.call_and_validate(app=APP, headers={"Authorization": f"Bearer {token}"},
                           checks=[not_a_server_error, status_code_conformance])
