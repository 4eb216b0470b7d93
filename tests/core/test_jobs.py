"""Jobs by name: a wrong job path fails where it is queued, every path the code queues resolves, and the queue
shows each task under its job's path while the task itself carries the caller's context."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
from django.db import transaction
from django_q.models import OrmQ

from apps.core.context import WorkContext, started
from apps.core.jobs import enqueue, job_resolve, jobs_drain

APPS = Path(__file__).resolve().parents[2] / "apps"


def _queued_paths() -> list[tuple[str, str]]:
    """(file, job path or f-string prefix) of every `enqueue(...)` call in apps/."""
    found = []
    for path in APPS.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "enqueue" and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant):
                    found.append((path.name, first.value))
                elif isinstance(first, ast.JoinedStr) and isinstance(first.values[0], ast.Constant):
                    found.append((path.name, first.values[0].value + "*"))
    return found


def test_the_code_queues_jobs():
    assert len(_queued_paths()) >= 6


@pytest.mark.parametrize(("where", "path"), _queued_paths())
def test_every_job_the_code_queues_resolves(where, path):
    if path.endswith("*"):  # f"apps.x.jobs.{name}": the module resolves (enqueue checks the name when it runs)
        module = importlib.import_module(path.rstrip("*").rstrip("."))
        assert any(callable(value) and getattr(value, "__module__", "") == module.__name__
                   for value in vars(module).values()), where
    else:
        assert callable(job_resolve(path)), where


def test_a_job_path_that_does_not_resolve_fails_where_it_is_queued():
    with pytest.raises(ImportError, match="apps.orchestration.jobs.no_such_job"):
        enqueue("apps.orchestration.jobs.no_such_job", 1)
    with pytest.raises(ImportError, match="no_such_module"):
        jobs_drain(lambda: enqueue("apps.no_such_module.run", 1))


@pytest.mark.django_db
def test_the_queue_shows_the_jobs_path_and_the_task_carries_the_context(django_capture_on_commit_callbacks):
    with started(WorkContext(correlation_id="corr-1", actor="olivia", origin="test")), \
            django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        enqueue("apps.learning.jobs.learn", 42)

    task = OrmQ.objects.get().task
    assert task["name"].startswith("apps.learning.jobs.learn #")
    assert task["func"] == "apps.core.jobs.run_job"
    assert task["args"][0] == "apps.learning.jobs.learn" and task["args"][2] == 42
    assert task["args"][1]["correlation_id"] == "corr-1" and task["args"][1]["actor"] == "olivia"
