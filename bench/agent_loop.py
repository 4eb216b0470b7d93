"""Benchmark: what the agent loop itself costs per turn (events, cost row, checkpoint, lease), apart from the model.

Run from the repo root:  python bench/agent_loop.py  [--turns N]

A replay script of N turns, each calling `add_note` (a tool that does no I/O), is played against a fresh SQLite
database (or DATABASE_URL). The model answers instantly, so the time per turn is YokeFlow's own bookkeeping,
including the checkpoint, which grows with the conversation. It is a benchmark, not a test: it always exits 0.
Goal: the median turn under 25 ms at 200 turns on this 2-core machine (a real model call takes seconds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from setup_django import bench_django

WORK = bench_django("yokeflow-bench-")

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

GOAL_MS = 25.0


def _script(turns: int) -> dict:
    note = {"type": "tool_use", "name": "add_note", "input": {"note": "progress " * 20}}
    done = {"type": "tool_use", "name": "update_task_status", "input": {"status": "done", "evidence": "bench"}}
    usage = {"input_tokens": 2000, "output_tokens": 300, "cache_read_input_tokens": 1500}
    body = [{"content": [{"type": "thinking", "thinking": "next step " * 30}, note], "usage": usage}
            for _ in range(turns - 2)]
    return {"turns": [*body, {"content": [done], "usage": usage}, {"content": [{"type": "text", "text": "ok"}]}]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--no-guards", action="store_true", help="without the intervention detectors a run uses")
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    from apps.agents.coding import coding_session_run
    from apps.agents.loop_types import LoopConfig
    from apps.agents.services import session_create
    from apps.interventions.detectors import guards_for
    from apps.orchestration.repository import repo_ensure
    from apps.projects.plan import plan_import
    from apps.projects.services import project_create, task_transition, tasks_refresh_ready

    owner = get_user_model().objects.create_user("bench")
    project = project_create(owner=owner, name="bench")
    plan_import(project=project, data={"epics": [{"key": "E1", "title": "e", "tasks": [{"key": "T1", "title": "t"}]}]})
    repo_ensure(project)
    script = WORK / "replay" / "bench" / "replay" / "T1.json"
    script.parent.mkdir(parents=True)
    script.write_text(json.dumps(_script(args.turns)))
    tasks_refresh_ready(project=project)
    task = task_transition(task=project.tasks.get(), to="running")
    session = session_create(project=project, task=task, kind="coding", model="claude-sonnet-5-5",
                             provider="replay", workdir=project.repo_path)

    stamps: list[float] = []
    started = time.perf_counter()
    guards, hooks = ([], []) if args.no_guards else guards_for(account="replay")
    outcome = coding_session_run(session=session, config=LoopConfig(max_turns=args.turns + 5), guards=guards,
                                 hooks=[*hooks, lambda event, state: stamps.append(time.perf_counter())])
    total = time.perf_counter() - started
    turns_ms = [(b - a) * 1000 for a, b in zip([started, *stamps], stamps, strict=False)]
    session.refresh_from_db()
    guarded = "off" if args.no_guards else "on"
    print(f"database: {connection.vendor}; guards: {guarded}; {outcome.status} after {session.turns} turns, "
          f"{session.last_seq} events, {total:.2f} s")
    print(f"per turn: median {statistics.median(turns_ms):.1f} ms, p95 "
          f"{statistics.quantiles(turns_ms, n=20)[18]:.1f} ms, first {turns_ms[0]:.1f} ms, last {turns_ms[-2]:.1f} ms")
    verdict = "met" if statistics.median(turns_ms) < GOAL_MS else "NOT met"
    print(f"goal (median turn < {GOAL_MS:.0f} ms at {args.turns} turns): {verdict}")


if __name__ == "__main__":
    main()
