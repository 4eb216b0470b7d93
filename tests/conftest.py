"""Shared fixtures: users with different roles, projects built through the real services, API clients."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client

from apps.core.tokens import token_create
from apps.projects.models import ProjectMembership
from apps.projects.plan import plan_import
from apps.projects.services import membership_set, project_create

# The fixtures every test package shares (fake Claude, tasks, sessions, replay projects, pauses).
pytest_plugins = ["tests.fixtures"]
# Tests that start real django-q2 clusters, worker processes, a database restart or a browser.
SLOW_PATHS = ("tests/browser/", "tests/orchestration/test_cluster.py", "tests/orchestration/test_worker_process.py",
              "tests/orchestration/test_database_restart.py", "tests/orchestration/test_crash_points.py")

EXAMPLE_PLAN = Path(__file__).resolve().parent.parent / "examples" / "todo" / "plan.json"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgres: needs PostgreSQL (row locks, real concurrency)")
    config.addinivalue_line("markers", "jail: needs the command jail (bubblewrap with user namespaces)")
    config.addinivalue_line("markers", "slow: real clusters, worker processes or a browser (-m 'not slow' skips)")


def pytest_itemcollected(item: pytest.Item) -> None:
    if any(part in str(item.path) for part in SLOW_PATHS):
        item.add_marker(pytest.mark.slow)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL=postgres://… (SQLite has no row-level locks)")
    if item.get_closest_marker("jail"):
        from django.conf import settings

        from apps.agents.jail import jail_status

        if settings.SANDBOX != "jail" or not jail_status().available:
            pytest.skip(f"needs the command jail ({jail_status().summary})")


@pytest.fixture(autouse=True)
def _projects_root(settings, tmp_path):
    """Each test's repositories live in its own directory: slugs repeat across tests, disks do not roll back."""
    settings.PROJECTS_ROOT = tmp_path / "projects"


@pytest.fixture
def example_plan() -> dict:
    return copy.deepcopy(json.loads(EXAMPLE_PLAN.read_text()))


@pytest.fixture
def make_user(django_user_model):
    def make(username: str, **extra):
        return django_user_model.objects.create_user(username=username, password="pw-" + username, **extra)

    return make


@pytest.fixture
def owner(make_user):
    return make_user("olivia")


@pytest.fixture
def outsider(make_user):
    return make_user("oscar")


@pytest.fixture
def staff(make_user):
    return make_user("stella", is_staff=True)


@pytest.fixture
def project(owner):
    return project_create(owner=owner, name="Todo service", spec="A todo app.")


@pytest.fixture
def planned_project(project, example_plan):
    plan_import(project=project, data=example_plan)
    return project


@pytest.fixture
def viewer(make_user, project):
    user = make_user("vera")
    membership_set(project=project, user=user, role=ProjectMembership.Role.VIEWER)
    return user


@pytest.fixture
def operator(make_user, project):
    user = make_user("otto")
    membership_set(project=project, user=user, role=ProjectMembership.Role.OPERATOR)
    return user


@pytest.fixture
def api_client():
    """A client that authenticates as `user` with a real bearer token."""

    def make(user) -> Client:
        _, raw = token_create(username=user.username)
        return Client(headers={"Authorization": f"Bearer {raw}"})

    return make
