"""Benchmark: the parallel scheduler end to end, with real django-q2 workers on PostgreSQL.

Run from the repo root:  python bench/scheduler.py  [--tasks N --scale X --concurrency C --strategy ready|batch|both
                                                     --epics E --poll SECONDS --timeout SECONDS]

A layered DAG (10 layers, each task hard-depending on 1-3 tasks of the layer above, spread over a few epics) is
imported into a fresh project per strategy, and a `manage.py yokeflow worker` subprocess runs it with the offline replay
model. Each task's script sleeps an uneven simulated duration (0.5-3 s times --scale), writes a file of its own
(so merges never conflict) and reports done; worktrees, commits, merges and the job queue are all real.
Afterwards the database tells:

- makespan: last task done minus first session started; bound: max(critical path, total work / concurrency);
  efficiency = bound / makespan;
- dispatch: a task's session start minus its latest hard dependency's completion (p50/p95), split into the wait
  for a claim (free slot, or the batch barrier) and claim → agent start (job queue, worker pickup, worktree);
- where the rest goes: loop time beyond the simulated duration, and agent end → done (commit, merge, cleanup).

The database is a throwaway one created with `createdb` on 127.0.0.1:5432 as postgres (or on the server of a
postgres DATABASE_URL; the given database itself is never touched) and dropped at the end.
The default (200 tasks, both strategies) takes about four minutes on a 2-core machine; --tasks 40 about two.
It is a benchmark, not a test: it always exits 0.
Goals: the ready strategy's efficiency >= 0.9, and its dispatch p95 < 100 ms.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urlsplit

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LAYERS = 10
SEED = 7
EFFICIENCY_GOAL = 0.9
DISPATCH_P95_GOAL_MS = 100.0
POLL_SECONDS = 0.2
PROGRESS_SECONDS = 10.0
WORKER_HEADROOM = 2  # the reaper schedule and a straggling job must never wait behind the task jobs
RUN_TASK_JOB = "apps.orchestration.jobs.run_task"
POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql", "postgis"}


# ------------------------------------------------------------------------------------------------ the DAG


@dataclass(frozen=True)
class Dag:
    keys: list[str]  # in layer order, which is also plan (position) order
    deps: dict[str, list[str]]
    seconds: dict[str, float]  # simulated duration of each task
    epic_of: dict[str, str]
    layer_of: dict[str, int]  # every task below the first layer depends on the one above: layers = Kahn batches

    @property
    def total(self) -> float:
        return sum(self.seconds.values())

    def critical_path(self) -> float:
        finish: dict[str, float] = {}
        for key in self.keys:  # layer order is a topological order
            finish[key] = self.seconds[key] + max((finish[d] for d in self.deps[key]), default=0.0)
        return max(finish.values(), default=0.0)

    def bound(self, concurrency: int) -> float:
        return max(self.critical_path(), self.total / concurrency)

    def batch_bound(self, concurrency: int) -> float:
        """What the batch strategy could reach at best: batches one after another, and inside a batch one task
        per epic at a time (they share the epic's worktree), so an epic's tasks in a batch run back to back."""
        total = 0.0
        for layer in set(self.layer_of.values()):
            per_epic: dict[str, float] = {}
            for key in (k for k in self.keys if self.layer_of[k] == layer):
                per_epic[self.epic_of[key]] = per_epic.get(self.epic_of[key], 0.0) + self.seconds[key]
            total += max(max(per_epic.values()), sum(per_epic.values()) / concurrency)
        return total


def build_dag(tasks: int, epics: int, scale: float, rng: random.Random) -> Dag:
    layers = max(1, min(LAYERS, tasks))
    bounds = [tasks * i // layers for i in range(layers + 1)]
    keys = [f"T{i + 1}" for i in range(tasks)]
    deps: dict[str, list[str]] = {}
    for layer in range(layers):
        above = keys[bounds[layer - 1]:bounds[layer]] if layer else []
        for key in keys[bounds[layer]:bounds[layer + 1]]:
            deps[key] = sorted(rng.sample(above, min(len(above), rng.randint(1, 3))), key=keys.index)
    seconds = {key: round(rng.uniform(0.5, 3.0) * scale, 2) for key in keys}
    epic_of = {key: f"E{index % epics + 1}" for index, key in enumerate(keys)}
    layer_of = {key: layer for layer in range(layers) for key in keys[bounds[layer]:bounds[layer + 1]]}
    return Dag(keys, deps, seconds, epic_of, layer_of)


def plan_data(dag: Dag) -> dict:
    """The plan JSON: no acceptance tests, so verification costs nothing beyond the merge itself."""
    epics: dict[str, list[dict]] = {}
    for key in dag.keys:
        epics.setdefault(dag.epic_of[key], []).append(
            {"key": key, "title": f"Write out/{key}.txt", "depends_on": dag.deps[key], "dependency_type": "hard"})
    return {"epics": [{"key": epic, "title": f"Epic {epic}", "tasks": tasks} for epic, tasks in epics.items()]}


def replay_script(key: str, seconds: float) -> dict:
    """Write a file of its own (after `seconds` of "thinking"), report done, end the turn."""
    usage = {"input_tokens": 1500, "output_tokens": 120}
    write = {"type": "tool_use", "name": "write_file",
             "input": {"path": f"out/{key}.txt", "content": f"{key} was here\n"}}
    done = {"type": "tool_use", "name": "update_task_status",
            "input": {"status": "done", "evidence": f"wrote out/{key}.txt"}}
    return {"description": f"{key}: simulated {seconds:.2f} s", "turns": [
        {"content": [write], "usage": usage, "delay_seconds": seconds},
        {"content": [done], "usage": usage},
        {"content": [{"type": "text", "text": "Done."}], "usage": usage},
    ]}


def write_scripts(dag: Dag, replay_root: Path, slug: str) -> None:
    folder = replay_root / slug / "replay"
    folder.mkdir(parents=True, exist_ok=True)
    for key in dag.keys:
        (folder / f"{key}.json").write_text(json.dumps(replay_script(key, dag.seconds[key])), encoding="utf-8")


# ------------------------------------------------------------------------------------------------ the database


@dataclass(frozen=True)
class Server:
    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"
    password: str = ""

    def url(self, name: str) -> str:
        auth = quote(self.user, safe="") + (f":{quote(self.password, safe='')}" if self.password else "")
        return f"postgres://{auth}@{self.host}:{self.port}/{name}"

    def run(self, tool: str, *args: str) -> None:
        """Run createdb or dropdb against this server (the password, if any, goes through the environment)."""
        env = os.environ | ({"PGPASSWORD": self.password} if self.password else {})
        subprocess.run([tool, "-h", self.host, "-p", str(self.port), "-U", self.user, *args],
                       env=env, check=True, capture_output=True, text=True)


def server_from_env() -> Server:
    """The server of a postgres DATABASE_URL (only its host and credentials are used), else the local one."""
    parts = urlsplit(os.environ.get("DATABASE_URL", ""))
    if parts.scheme not in POSTGRES_SCHEMES:
        return Server()
    return Server(host=parts.hostname or "127.0.0.1", port=parts.port or 5432,
                  user=unquote(parts.username or "postgres"), password=unquote(parts.password or ""))


def database_create(server: Server) -> str:
    name = f"yokeflow_bench_{os.getpid()}_{int(time.time())}"
    server.run("createdb", name)
    return name


def database_drop(server: Server, name: str) -> None:
    from django.apps import apps
    from django.db import connections

    if apps.ready:  # our own connections would make dropdb wait (--force ends the cluster's, if any are left)
        connections.close_all()
    try:
        server.run("dropdb", "--if-exists", "--force", name)
    except subprocess.CalledProcessError as exc:
        print(f"could not drop database {name}: {exc.stderr.strip()}")


def settings_module(work: Path, poll: float | None) -> str:
    """yokeflow.settings, or an overlay in the temp dir changing django-q2's broker poll interval (settings.py reads
    no environment variable for it, and it is the floor of every job's pickup time)."""
    if poll is None:
        return "yokeflow.settings"
    (work / "bench_settings.py").write_text(
        "from yokeflow.settings import *  # noqa: F403\n\n"
        f"Q_CLUSTER = {{**Q_CLUSTER, 'poll': {poll!r}}}  # noqa: F405\n", encoding="utf-8")
    sys.path.insert(0, str(work))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(work), str(ROOT), os.environ.get("PYTHONPATH")]))
    return "bench_settings"


def django_q_poll() -> float:
    from django_q.conf import Conf

    return Conf.POLL


def django_setup(database_url: str, work: Path, workers: int, poll: float | None) -> None:
    """Configure the environment every process of the run shares (this one and the cluster), then migrate."""
    os.environ.update({
        "DATABASE_URL": database_url, "DEBUG": "1", "PROJECTS_ROOT": str(work / "projects"),
        "REPLAY_ROOT": str(work / "replay"), "LLM_PROVIDER": "replay", "Q_WORKERS": str(workers),
        "DJANGO_SETTINGS_MODULE": settings_module(work, poll),
    })
    os.environ.pop("ANTHROPIC_API_KEY", None)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    logging.getLogger("django-q").setLevel(logging.WARNING)  # one "Enqueued" line per job would drown the figures


# ------------------------------------------------------------------------------------------------ the cluster


def cluster_start(log: Path) -> subprocess.Popen:
    """`manage.py yokeflow worker` in its own process group (stopping it takes its workers too); ready once it says
    so."""
    out = log.open("ab")
    process = subprocess.Popen([sys.executable, "manage.py", "yokeflow", "worker"], cwd=ROOT, env=os.environ.copy(),
                               stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    out.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if b"running." in log.read_bytes():  # django-q2 logs "Q Cluster … running." when its workers are up
            return process
        time.sleep(POLL_SECONDS)
    print(f"the cluster did not report running within 60 s (exit code {process.poll()}); measuring anyway")
    return process


def cluster_stop(process: subprocess.Popen) -> None:
    for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def log_tail(log: Path, lines: int = 40) -> str:
    text = log.read_text(encoding="utf-8", errors="replace").splitlines() if log.exists() else []
    return "\n".join(text[-lines:])


# ------------------------------------------------------------------------------------------------ one run


@dataclass
class Result:
    strategy: str
    tasks: int
    done: int = 0
    status: str = ""
    wall: float = 0.0  # run_start → project no longer running, as seen by this process
    makespan: float = math.nan
    bound: float = math.nan
    dispatch_ms: list[float] = field(default_factory=list)
    claim_wait_ms: list[float] = field(default_factory=list)  # ready → claimed (a slot, or the batch barrier)
    pickup_ms: list[float] = field(default_factory=list)  # claimed → agent started (queue, worker, worktree)
    # The pickup split at the job's enqueue time and the task's own worktree row (ready strategy only):
    to_queue_ms: list[float] = field(default_factory=list)  # claimed → job queued (the claim's transaction)
    to_worktree_ms: list[float] = field(default_factory=list)  # job queued → worktree added (poll, pickup, git)
    from_worktree_ms: list[float] = field(default_factory=list)  # worktree added → agent started
    loop_extra_s: list[float] = field(default_factory=list)  # session time beyond the simulated duration
    settle_s: list[float] = field(default_factory=list)  # agent ended → task done (commit, merge, cleanup)
    extra_sessions: int = 0
    batch_bound: float = math.nan  # batch strategy: its own best case (see Dag.batch_bound)
    failed_jobs: int = 0  # django-q2 jobs that raised (their tracebacks are in the worker log)
    problems: list[str] = field(default_factory=list)

    @property
    def efficiency(self) -> float:
        return self.bound / self.makespan if self.makespan > 0 else math.nan


def wait_finished(project_id: int, total: int, timeout: float) -> bool:
    from apps.projects.models import Project, Task

    started = time.monotonic()
    next_report = started + PROGRESS_SECONDS
    while time.monotonic() - started < timeout:
        if Project.objects.get(pk=project_id).status != Project.Status.RUNNING:
            return True
        if time.monotonic() >= next_report:
            counts = Counter(Task.objects.filter(project_id=project_id).values_list("status", flat=True))
            print(f"  … {time.monotonic() - started:.0f} s: {counts['done']}/{total} done, "
                  f"{counts['running']} running, {counts['merging']} merging")
            next_report += PROGRESS_SECONDS
        time.sleep(POLL_SECONDS)
    return False


def run_strategy(owner: AbstractBaseUser, dag: Dag, strategy: str, args: argparse.Namespace, work: Path) -> Result:
    from django.utils import timezone

    from apps.orchestration.lifecycle import run_start
    from apps.projects.plan import plan_import
    from apps.projects.services import project_create

    slug = f"bench-{strategy}"
    project = project_create(owner=owner, name=f"bench {strategy}", slug=slug)
    plan_import(project=project, data=plan_data(dag), replace=False, apply_suggestions=False)
    write_scripts(dag, work / "replay", slug)
    log = work / f"worker-{strategy}.log"
    cluster = cluster_start(log)
    since = timezone.now()
    try:
        began = time.monotonic()
        run_start(project=project, parallel=True, max_concurrency=args.concurrency, strategy=strategy)
        finished = wait_finished(project.pk, len(dag.keys), args.timeout)
        wall = time.monotonic() - began
    finally:
        cluster_stop(cluster)
    result = measure(project.pk, dag, strategy, args.concurrency)
    result.wall = wall
    result.failed_jobs = failed_jobs(since, result)
    if not finished:
        result.problems.append(f"timed out after {args.timeout:.0f} s")
    if result.problems or result.done < result.tasks:
        print(f"--- {strategy}: {'; '.join(result.problems) or 'not every task is done'}; tail of {log}:")
        print(log_tail(log))
    return result


# ------------------------------------------------------------------------------------------------ measuring


def _seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


def measure(project_id: int, dag: Dag, strategy: str, concurrency: int) -> Result:
    from django_q.models import Task as QueuedJob

    from apps.agents.models import AgentSession
    from apps.orchestration.models import Worktree
    from apps.projects.models import Project, Task

    tasks = {t.key: t for t in Task.objects.filter(project_id=project_id)}
    worktree_added = dict(Worktree.objects.filter(project_id=project_id, task__isnull=False)
                          .order_by("created").values_list("task__key", "created"))  # the last one wins
    # django-q2 stamps `started` when the job is queued (async_task), not when a worker takes it.
    queued = {job.args[0]: job.started for job in QueuedJob.objects.filter(func=RUN_TASK_JOB)}
    sessions: dict[str, list[AgentSession]] = {}  # a task's attempts, oldest first
    attempts = AgentSession.objects.filter(project_id=project_id, kind="coding").select_related("task")
    for session in attempts.order_by("created"):
        sessions.setdefault(session.task.key, []).append(session)
    result = Result(strategy, len(dag.keys), bound=dag.bound(concurrency),
                    status=Project.objects.get(pk=project_id).status)
    if strategy == "batch":
        result.batch_bound = dag.batch_bound(concurrency)
    result.done = sum(t.status == Task.Status.DONE for t in tasks.values())
    result.extra_sessions = sum(len(s) - 1 for s in sessions.values())
    result.problems += [f"{t.key} {t.status}: {t.last_error[:200]}" for t in tasks.values()
                        if t.status != Task.Status.DONE][:5]
    starts = [s[0].started_at for s in sessions.values() if s[0].started_at]
    ends = [t.completed_at for t in tasks.values() if t.completed_at]
    if starts and ends:
        result.makespan = _seconds(max(ends), min(starts))
    for key in dag.keys:
        _measure_task(result, dag, key, tasks, sessions.get(key, []), worktree_added.get(key), queued)
    return result


def _measure_task(result: Result, dag: Dag, key: str, tasks: dict, sessions: list,
                  worktree_added: datetime | None, queued: dict[int, datetime]) -> None:
    task = tasks[key]
    first, last = (sessions[0], sessions[-1]) if sessions else (None, None)
    if last and last.started_at and last.ended_at:
        result.loop_extra_s.append(_seconds(last.ended_at, last.started_at) - dag.seconds[key])
        if task.completed_at:
            result.settle_s.append(_seconds(task.completed_at, last.ended_at))
    deps_done = [tasks[d].completed_at for d in dag.deps[key]]
    if not deps_done or None in deps_done or first is None or first.started_at is None:
        return  # a root task (nothing to wait for) or one that never ran
    ready = max(deps_done)
    result.dispatch_ms.append(_seconds(first.started_at, ready) * 1000)
    if task.started_at:
        result.claim_wait_ms.append(_seconds(task.started_at, ready) * 1000)
        result.pickup_ms.append(_seconds(first.started_at, task.started_at) * 1000)
    job_queued = queued.get(first.pk)
    if task.started_at and worktree_added and job_queued and len(sessions) == 1:
        result.to_queue_ms.append(_seconds(job_queued, task.started_at) * 1000)
        result.to_worktree_ms.append(_seconds(worktree_added, job_queued) * 1000)
        result.from_worktree_ms.append(_seconds(first.started_at, worktree_added) * 1000)


def failed_jobs(since: datetime, result: Result) -> int:
    """Jobs that raised: each one is a task whose job ended without scheduling on (the run may then stall
    until the reaper's next round), so they are reported even when every task ends done."""
    from django_q.models import Failure

    failures = list(Failure.objects.filter(stopped__gte=since).order_by("stopped"))
    for job in failures[:3]:
        last_line = str(job.result).strip().splitlines()[-1:] or [""]
        result.problems.append(f"job {job.func}{job.args} failed: {last_line[0][:300]}")
    return len(failures)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (works for tiny samples, unlike statistics.quantiles)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


# ------------------------------------------------------------------------------------------------ reporting


def print_table(results: list[Result]) -> None:
    header = (f"{'strategy':<9}{'tasks':>9}{'makespan s':>12}{'bound s':>9}{'efficiency':>12}"
              f"{'dispatch p50 ms':>17}{'p95 ms':>9}")
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r.strategy:<9}{f'{r.done}/{r.tasks}':>9}{r.makespan:>12.1f}{r.bound:>9.1f}{r.efficiency:>12.2f}"
              f"{percentile(r.dispatch_ms, 50):>17.0f}{percentile(r.dispatch_ms, 95):>9.0f}")


def _p50_p95(values: list[float]) -> str:
    return f"p50 {percentile(values, 50):.0f} / p95 {percentile(values, 95):.0f} ms"


def print_breakdown(r: Result) -> None:
    indent = " " * (len(r.strategy) + 2)
    print(f"{r.strategy}: status {r.status}, wall {r.wall:.1f} s, {r.extra_sessions} retried sessions, "
          f"{r.failed_jobs} failed jobs")
    print(f"{indent}dispatch = wait for a claim {_p50_p95(r.claim_wait_ms)} + claim → agent start "
          f"{_p50_p95(r.pickup_ms)}")
    if r.to_worktree_ms:
        print(f"{indent}claim → agent start = claim → job queued {_p50_p95(r.to_queue_ms)} + queued → worktree added "
              f"{_p50_p95(r.to_worktree_ms)} + worktree → agent start {_p50_p95(r.from_worktree_ms)}")
    print(f"{indent}per task: agent loop beyond the simulated duration mean {mean(r.loop_extra_s):.2f} s; "
          f"agent end → done (commit, merge, cleanup) mean {mean(r.settle_s):.2f} s, "
          f"p95 {percentile(r.settle_s, 95):.2f} s, max {max(r.settle_s, default=math.nan):.2f} s")
    if not math.isnan(r.batch_bound):
        print(f"{indent}batch's own bound (batches in turn, one task per epic at a time) {r.batch_bound:.1f} s: "
              f"makespan is {r.makespan / r.batch_bound:.2f}x that")
    for problem in r.problems:
        print(f"{indent}problem: {problem}")


def print_goals(results: list[Result]) -> None:
    ready = next((r for r in results if r.strategy == "ready"), None)
    if ready is None:
        print("goals concern the ready strategy, which was not run")
        return
    met = {True: "met", False: "not met"}
    p95 = percentile(ready.dispatch_ms, 95)
    print(f"goal: ready efficiency >= {EFFICIENCY_GOAL}: {ready.efficiency:.2f}, "
          f"{met[ready.efficiency >= EFFICIENCY_GOAL]}")
    print(f"goal: ready dispatch p95 < {DISPATCH_P95_GOAL_MS:.0f} ms: {p95:.0f} ms, {met[p95 < DISPATCH_P95_GOAL_MS]}")


# ------------------------------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every simulated duration")
    parser.add_argument("--concurrency", type=int, default=8, help="the project's max_concurrency")
    parser.add_argument("--strategy", choices=("ready", "batch", "both"), default="both")
    parser.add_argument("--epics", type=int, default=5, help="tasks are spread round-robin over this many epics")
    parser.add_argument("--poll", type=float, help="override django-q2's broker poll interval (default: settings' "
                        "Q_CLUSTER, i.e. django-q2's 0.2 s), through a settings overlay in the temp dir")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for one strategy's run")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    dag = build_dag(max(1, args.tasks), max(1, args.epics), args.scale, random.Random(SEED))
    strategies = ("ready", "batch") if args.strategy == "both" else (args.strategy,)
    work = Path(tempfile.mkdtemp(prefix="yokeflow-bench-sched-"))
    server = server_from_env()
    name = database_create(server)
    results: list[Result] = []
    try:
        django_setup(server.url(name), work, args.concurrency + WORKER_HEADROOM, args.poll)
        from django.contrib.auth import get_user_model

        owner = get_user_model().objects.create_user("bench")
        print(f"database {name} on {server.host}:{server.port}; {len(dag.keys)} tasks in "
              f"{len(set(dag.layer_of.values()))} layers, "
              f"{sum(map(len, dag.deps.values()))} hard edges, {args.epics} epics; simulated work "
              f"{dag.total:.1f} s, critical path {dag.critical_path():.1f} s, concurrency {args.concurrency}, "
              f"{args.concurrency + WORKER_HEADROOM} workers, broker poll {django_q_poll():g} s")
        for strategy in strategies:
            results.append(run_strategy(owner, dag, strategy, args, work))
            print_breakdown(results[-1])
    finally:
        database_drop(server, name)
        if all(r.done == r.tasks and not r.problems for r in results):
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work} (worker logs, repositories) for inspection")
    print_table(results)
    print("(bound = max(critical path, total simulated work / concurrency); efficiency = bound / makespan)")
    print_goals(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
