"""Benchmark: what the jail costs per command, and over a whole replay session of agent commands.

Run from the repo root:  python bench/jail.py  [--runs N] [--turns N]

1. `true` run N times three ways: a bare `subprocess.run(["/bin/bash", "-c", "true"])`, YokeFlow's `run_command`
   unjailed (SANDBOX=policy: process group, limits, output capture) and `run_command` in the jail (bubblewrap,
   cgroups where writable). The jail's overhead is jailed minus bare, at p50 and p95.
2. A replay session of N turns, each an agent `run_command` of `true`, played with the jail and without it.

It is a benchmark, not a test: it always exits 0. Goal: jail overhead p50 <= 20 ms per command.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from setup_django import bench_django

WORK = bench_django("yokeflow-bench-jail-")

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402

GOAL_MS = 20.0


def _ms(samples: list[float]) -> tuple[float, float]:
    return statistics.median(samples) * 1000, statistics.quantiles(samples, n=20)[18] * 1000


def _time(fn, runs: int) -> list[float]:
    fn()  # warm up (the jail probes bubblewrap once per process)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


def commands(runs: int) -> None:
    from apps.agents.jail import jail_status
    from apps.agents.sandbox import run_command

    directory = Path(tempfile.mkdtemp(prefix="yokeflow-bench-jail-wt-"))
    bare = _time(lambda: subprocess.run(["/bin/bash", "-c", "true"], check=True), runs)
    settings.SANDBOX = "policy"
    unjailed = _time(lambda: run_command("true", cwd=directory), runs)
    settings.SANDBOX = "jail"
    status = jail_status(refresh=True)
    if not status.available:
        print(f"jail unavailable ({status.reason}): only the unjailed figures")
        jailed = unjailed
    else:
        jailed = _time(lambda: run_command("true", cwd=directory), runs)
    print(f"jail: {status.summary}")
    print(f"`true` x {runs}:            p50      p95")
    rows = (("bare subprocess", bare), ("run_command, no jail", unjailed), ("run_command, jailed", jailed))
    for name, samples in rows:
        p50, p95 = _ms(samples)
        print(f"  {name:<22} {p50:7.1f} ms {p95:7.1f} ms")
    overhead = [j - b for j, b in zip(sorted(jailed), sorted(bare), strict=True)]
    p50, p95 = _ms(overhead)
    print(f"  jail overhead          {p50:7.1f} ms {p95:7.1f} ms")
    print(f"goal (overhead p50 <= {GOAL_MS:.0f} ms): {'met' if p50 <= GOAL_MS else 'NOT met'}")


def _script(turns: int) -> dict:
    command = {"type": "tool_use", "name": "run_command", "input": {"command": "true"}}
    done = {"type": "tool_use", "name": "update_task_status", "input": {"status": "done", "evidence": "bench"}}
    return {"turns": [*({"content": [command]} for _ in range(turns - 2)), {"content": [done]},
                      {"content": [{"type": "text", "text": "ok"}]}]}


def session(turns: int) -> None:
    from apps.agents.coding import coding_session_run
    from apps.agents.loop_types import LoopConfig
    from apps.agents.services import session_create
    from apps.orchestration.repository import repo_ensure
    from apps.projects.plan import plan_import
    from apps.projects.services import project_create, task_transition, tasks_refresh_ready

    call_command("migrate", verbosity=0)
    owner = get_user_model().objects.create_user("bench")
    project = project_create(owner=owner, name="bench")
    tasks = [{"key": key, "title": key} for key in ("T1", "T2")]
    plan_import(project=project, data={"epics": [{"key": "E1", "title": "e", "tasks": tasks}]})
    repo_ensure(project)
    for key in ("T1", "T2"):
        script = WORK / "replay" / "bench" / "replay" / f"{key}.json"
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(json.dumps(_script(turns)))
    tasks_refresh_ready(project=project)
    print(f"replay session of {turns} turns, one `run_command` each:")
    for key, mode in (("T1", "policy"), ("T2", "jail")):
        settings.SANDBOX = mode
        task = task_transition(task=project.tasks.get(key=key), to="running")
        row = session_create(project=project, task=task, kind="coding", model="claude-sonnet-5-5",
                             provider="replay", workdir=project.repo_path)
        started = time.perf_counter()
        outcome = coding_session_run(session=row, config=LoopConfig(max_turns=turns + 5))
        total = time.perf_counter() - started
        label = "jailed" if mode == "jail" else "no jail"
        print(f"  {label:<8} {outcome.status}: {total:.2f} s, {total / turns * 1000:.1f} ms per turn")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--turns", type=int, default=200)
    args = parser.parse_args()
    commands(args.runs)
    session(args.turns)


if __name__ == "__main__":
    main()
