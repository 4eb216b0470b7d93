"""Benchmark: how long the live pages and the task list API take on large plans.
Run from the repo root:  python bench/pages.py [--sizes 2000 10000] [--repeat 30]

For each size, a project with that many tasks (20 epics, chains with cross-epic dependencies, every task with an
acceptance test) is imported through the real plan import and marked running, with a third of its tasks done and
a few running. Then, through Django's test client (the whole middleware stack, login session, htmx headers):
  - the swimlane partial the dashboard polls (`?part=swimlanes`, a change since the client's last event),
  - the unchanged poll (the 204 answer while nothing happened),
  - the progress panel partial, and its unchanged poll (204),
  - the task list API, page of 100 (`GET /api/projects/{id}/tasks?page=3&page_size=100`).
Each is timed `--repeat` times after one warm-up; it prints p50/p95 in milliseconds and the queries per request.
SQLite by default (DATABASE_URL to point it at PostgreSQL). It is a benchmark, not a test: it always exits 0.
Goals: swimlane partial p50 < 100 ms at 2,000 tasks; task list page of 100 p50 < 30 ms.
"""

from __future__ import annotations

import argparse
import statistics
import time

from setup_django import bench_django

WORK = bench_django("yokeflow-bench-pages-")

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from apps.projects.models import Project, Task  # noqa: E402
from apps.projects.plan import plan_import  # noqa: E402
from apps.projects.services import project_create, project_status_move  # noqa: E402
from tests.factories import wide_plan  # noqa: E402

SWIMLANE_GOAL_MS, TASK_PAGE_GOAL_MS = 100.0, 30.0
HTMX = {"HX-Request": "true"}


def make_project(owner, size: int) -> Project:
    project = project_create(owner=owner, name=f"Bench {size}", slug=f"bench-{size}", spec="a large plan")
    plan_import(project=project, data=wide_plan(size))
    ids = list(project.tasks.order_by("position").values_list("pk", flat=True))
    now = timezone.now()
    Task.objects.filter(pk__in=ids[: size // 3]).update(status=Task.Status.DONE, started_at=now, completed_at=now)
    Task.objects.filter(pk__in=ids[size // 3: size // 3 + 5]).update(status=Task.Status.RUNNING, started_at=now)
    project_status_move(project=project, to=Project.Status.RUNNING)
    return project


def timed(client: Client, url: str, repeat: int, expect: int) -> tuple[list[float], int]:
    client.get(url, headers=HTMX)  # warm-up: templates compiled, caches filled
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        response = client.get(url, headers=HTMX)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == expect, (url, response.status_code)
    with CaptureQueriesContext(connection) as queries:
        client.get(url, headers=HTMX)
    return times, len(queries)


def p95(times: list[float]) -> float:
    return sorted(times)[max(0, round(0.95 * len(times)) - 1)]


def report(label: str, times: list[float], queries: int, goal: float | None = None) -> None:
    p50 = statistics.median(times)
    verdict = "" if goal is None else ("  goal met" if p50 < goal else f"  GOAL MISSED (< {goal:.0f} ms)")
    print(f"  {label:<34} p50 {p50:7.1f} ms   p95 {p95(times):7.1f} ms   {queries:2d} queries{verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    owner = get_user_model().objects.create_user("bench", password="bench")
    client = Client(HTTP_HOST="localhost")
    client.force_login(owner)
    print(f"database: {connection.vendor}; {args.repeat} timed requests each, after one warm-up")
    for size in args.sizes:
        started = time.perf_counter()
        project = make_project(owner, size)
        print(f"{size} tasks (imported in {time.perf_counter() - started:.1f} s):")
        base = f"/projects/{project.slug}/"
        times, queries = timed(client, f"{base}?part=swimlanes&after=0", args.repeat, 200)
        report("swimlane partial (changed)", times, queries, SWIMLANE_GOAL_MS if size <= 2000 else None)
        last = project.events.order_by("-id").values_list("id", flat=True).first()
        times, queries = timed(client, f"{base}?part=swimlanes&after={last}", args.repeat, 204)
        report("swimlane poll (unchanged, 204)", times, queries)
        times, queries = timed(client, f"{base}?part=progress", args.repeat, 200)
        report("progress panel partial (changed)", times, queries)
        times, queries = timed(client, f"{base}?part=progress&after={last}", args.repeat, 204)
        report("progress poll (unchanged, 204)", times, queries)
        times, queries = timed(client, f"/api/projects/{project.pk}/tasks?page=3&page_size=100", args.repeat, 200)
        report("task list API, page of 100", times, queries, TASK_PAGE_GOAL_MS)


if __name__ == "__main__":
    main()
