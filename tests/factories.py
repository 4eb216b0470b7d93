"""Generated plans for size tests and benchmarks (bench/pages.py imports this too)."""

from __future__ import annotations


def wide_plan(tasks: int, epics: int = 20) -> dict:
    """`tasks` tasks in `epics` epics; each task waits for the one before it in its epic and, every third task, for
    one in the previous epic: a graph with long chains, cross-epic arrows and many parallel batches."""
    per_epic = max(1, tasks // epics)
    plan: dict = {"epics": []}
    for e in range(epics):
        rows = []
        for i in range(per_epic):
            n = e * per_epic + i + 1
            deps = [f"T{n - 1}"] if i else []
            if e and i % 3 == 0:
                deps.append(f"T{n - per_epic}")
            rows.append({"key": f"T{n}", "title": f"Task {n} of epic {e + 1}", "depends_on": deps,
                         "description": f"build part {n}", "estimate_minutes": 5 + n % 20,
                         "tests": [{"description": "it works", "command": "true"}]})
        plan["epics"].append({"key": f"E{e + 1}", "title": f"Epic {e + 1}", "tasks": rows})
    return plan
