"""Soak: runs of a generated plan on real `yokeflow worker` clusters (PostgreSQL) while workers are SIGKILLed.

Run from the repo root:  python bench/soak.py  [--runs N --tasks N --concurrency C --workers W --seed S
                                                --kill-every SECONDS --timeout SECONDS]

Each run imports a layered plan (bench/scheduler.py's DAG: every task writes a file of its own after 0.1-0.6 s of
simulated thinking) and builds it with the offline replay model. Meanwhile three kinds of kill land:

- random: every --kill-every seconds (on average) one worker process of the cluster gets SIGKILL, wherever it is;
- aimed: every cluster is started with one fault armed (`YOKEFLOW_FAULT`, a random step of finishing a task: after
  the commit, before the merge, after the tests on main, after the merge, before done, during clean-up, or after a
  tool result), so one worker kills itself exactly in that window;
- whole cluster: every third random kill takes the cluster's main process instead (its children die with it), and
  a new cluster starts armed with another fault.

At the end of each run the database and the repository tell what went wrong, and the figures printed at the end
are those the durable-merge issue names: lost (a done task whose file is not on main), stuck (a task not done when
the run was given up), double-merged (a task merged into main more than once), transcript gaps (a session whose
event numbers skip), double-charged (two cost rows for one turn of one session). Goal: all zero over at least 200
sessions and 30 kills. It is a benchmark, not a test: it always exits 0.

The database is a throwaway one (created and dropped here); the default (6 runs of 40 tasks) takes about ten
minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
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
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from scheduler import (  # noqa: E402 - the scheduler benchmark's DAG, database and cluster helpers
    ROOT,
    build_dag,
    cluster_stop,
    database_create,
    database_drop,
    django_setup,
    log_tail,
    plan_data,
    server_from_env,
    write_scripts,
)

FAULTS = ("after-commit", "before-merge", "after-tests-on-main", "after-merge", "before-done", "during-cleanup",
          "after-tool-result")
CHILD_NAME = "yf-worker-child"


@dataclass
class Tally:
    runs: int = 0
    sessions: int = 0
    tasks: int = 0
    kills: Counter = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    double_merged: list[str] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    double_charged: list[str] = field(default_factory=list)
    seconds: float = 0.0


class Cluster:
    """A `yokeflow worker` with one fault armed; restarted when its main process is killed."""

    def __init__(self, work: Path, rng: random.Random, tally: Tally) -> None:
        self.work, self.rng, self.tally = work, rng, tally
        self.process: subprocess.Popen | None = None
        self.armed = 0

    def start(self) -> None:
        self.armed += 1
        fault = self.rng.choice(FAULTS)
        env = os.environ | {"YOKEFLOW_FAULT": fault, "YOKEFLOW_FAULT_ONCE": str(self.work / f"fired-{self.armed}")}
        log = (self.work / "worker.log").open("ab")
        self.process = subprocess.Popen([sys.executable, "manage.py", "yokeflow", "worker"], cwd=ROOT, env=env,
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def fired(self) -> int:
        return len(list(self.work.glob("fired-*")))

    def kill_one(self) -> None:
        import psutil

        if self.process is None or self.process.poll() is not None:
            self.start()
            return
        self.tally.kills["attempts"] += 1
        whole = self.tally.kills["attempts"] % 3 == 0  # every third kill takes the whole cluster
        if whole:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            self.tally.kills["cluster"] += 1
            self.start()
            return
        children = [p for p in psutil.Process(self.process.pid).children(recursive=True)
                    if p.name() == CHILD_NAME]
        if len(children) > 1:
            victim = self.rng.choice(children[1:])  # not the sentinel: it is the one that brings workers back
            victim.kill()
            self.tally.kills["random"] += 1

    def stop(self) -> None:
        if self.process is not None:
            cluster_stop(self.process)


def run_once(owner, number: int, args: argparse.Namespace, work: Path, rng: random.Random, tally: Tally) -> None:
    from apps.orchestration.lifecycle import run_start
    from apps.projects.models import Project
    from apps.projects.plan import plan_import
    from apps.projects.services import project_create

    dag = build_dag(args.tasks, 3, 0.2, rng)
    slug = f"soak-{number}"
    project = project_create(owner=owner, name=slug, slug=slug, max_concurrency=args.concurrency)
    plan_import(project=project, data=plan_data(dag), replace=False, apply_suggestions=False)
    write_scripts(dag, work / "replay", slug)
    cluster = Cluster(work, rng, tally)
    cluster.start()
    began = time.monotonic()
    try:
        time.sleep(2)  # the cluster's start-up
        run_start(project=project, parallel=True, max_concurrency=args.concurrency)
        next_kill = time.monotonic() + rng.expovariate(1 / args.kill_every)
        while Project.objects.get(pk=project.pk).status == Project.Status.RUNNING:
            if time.monotonic() - began > args.timeout:
                break
            if time.monotonic() >= next_kill:
                cluster.kill_one()
                next_kill = time.monotonic() + rng.expovariate(1 / args.kill_every)
            time.sleep(0.2)
    finally:
        cluster.stop()
    tally.kills["aimed"] += cluster.fired()
    for fired in work.glob("fired-*"):
        fired.unlink()
    tally.seconds += time.monotonic() - began
    inspect(project, tally)
    tally.runs += 1
    print(f"run {number}: {project.tasks.filter(status='done').count()}/{len(dag.keys)} done in "
          f"{time.monotonic() - began:.0f} s; kills so far {dict(tally.kills)}")


def inspect(project, tally: Tally) -> None:
    from django.db.models import Count
    from git import Repo

    from apps.agents.models import AgentCost

    repo = Repo(project.repo_path)
    merges = Counter()
    for commit in repo.iter_commits("main", first_parent=True):
        for line in commit.message.splitlines():
            if line.startswith("YokeFlow-Task: "):
                merges[line.split(": ", 1)[1]] += 1
    main_files = {item.path for item in repo.head.commit.tree.traverse()}
    for task in project.tasks.all():
        tally.tasks += 1
        if task.status != "done":
            tally.stuck.append(f"{project.slug}/{task.key} {task.status}: {task.last_error[:120]}")
        elif f"out/{task.key}.txt" not in main_files:
            tally.lost.append(f"{project.slug}/{task.key}")
        if merges[task.key] > 1:
            tally.double_merged.append(f"{project.slug}/{task.key} x{merges[task.key]}")
    for session in project.sessions.all():
        tally.sessions += 1
        seqs = list(session.events.order_by("seq").values_list("seq", flat=True))
        if seqs != list(range(1, len(seqs) + 1)):
            tally.gaps.append(f"session {session.pk}")
    doubles = (AgentCost.objects.filter(project=project).values("session", "turn").annotate(n=Count("id"))
               .filter(n__gt=1))
    tally.double_charged += [f"session {row['session']} turn {row['turn']}" for row in doubles]


def report(tally: Tally) -> None:
    kills = tally.kills["random"] + tally.kills["aimed"] + tally.kills["cluster"]
    print()
    print(f"runs {tally.runs} · tasks {tally.tasks} · sessions {tally.sessions} · kills {kills} "
          f"(random workers {tally.kills['random']}, aimed at the merge window {tally.kills['aimed']}, "
          f"whole clusters {tally.kills['cluster']}) · {tally.seconds:.0f} s")
    figures = {"lost": tally.lost, "stuck": tally.stuck, "double-merged": tally.double_merged,
               "transcript gaps": tally.gaps, "double-charged calls": tally.double_charged}
    print(" / ".join(figures) + ": " + " / ".join(str(len(v)) for v in figures.values()))
    for name, items in figures.items():
        if items:
            print(f"  {name}: {', '.join(items[:10])}")
    goal = not any(figures.values()) and tally.sessions >= 200 and kills >= 30
    print(f"goal (0 / 0 / 0 / 0 / 0 over >= 200 sessions and >= 30 kills): {'met' if goal else 'not met'}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--tasks", type=int, default=40, help="tasks per run")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, default=4, help="worker processes per cluster")
    parser.add_argument("--kill-every", type=float, default=6.0, help="mean seconds between random kills")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds before a run is given up as stuck")
    parser.add_argument("--seed", type=int, default=16)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rng = random.Random(args.seed)
    server = server_from_env()
    name = database_create(server)
    work = Path(tempfile.mkdtemp(prefix="yokeflow-soak-"))
    os.environ.update({"SESSION_LEASE_SECONDS": "5", "REAPER_SECONDS": "1", "QUEUED_STALL_SECONDS": "10",
                       "TASK_MAX_ATTEMPTS": "10", "LOG_LEVEL": "WARNING"})
    tally = Tally()
    try:
        django_setup(server.url(name), work, args.workers, None)
        from django.contrib.auth import get_user_model

        owner = get_user_model().objects.create_user("soak")
        for number in range(1, args.runs + 1):
            run_once(owner, number, args, work, rng, tally)
        report(tally)
        if tally.stuck:
            print(f"--- tail of {work / 'worker.log'}:\n{log_tail(work / 'worker.log')}")
    finally:
        database_drop(server, name)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
