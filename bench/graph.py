"""Benchmark for apps.projects.graph (the dependency resolver).

Run from the repo root:  python bench/graph.py  [--tasks N --edges M --seed S --repeat R]

It is a benchmark, not a test: it always exits 0 and only reports whether the goal was met.
Goal: analyze() + critical_path() on 100,000 tasks / 300,000 edges well under 1 second.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# The resolver has no Django dependency, so importing it only needs the repo root on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from apps.projects.graph import DependencyGraph, Edge, Node

GOAL_SECONDS = 1.0
DEFAULT_CASES = ((10_000, 30_000), (100_000, 300_000))
LAYER_REACH = 3  # a task depends on tasks at most this many layers above it


@dataclass
class Timings:
    construct: float = float("inf")
    analyze: float = float("inf")
    critical: float = float("inf")
    combined: float = float("inf")  # construct + analyze + critical path, measured in one run
    ascii: float = float("inf")


def layer_bounds(tasks: int) -> list[int]:
    """Start index of each layer (plus the end); ~sqrt(n)/3 layers gives long, realistic chains."""
    layers = max(2, round(tasks**0.5 / 3))
    return [tasks * i // layers for i in range(layers + 1)]


def build_nodes(tasks: int, rng: random.Random) -> list[Node]:
    return [
        Node(f"T{i}", priority=rng.randrange(5), estimate=float(rng.randint(1, 60)), group=f"E{i % 200}")
        for i in range(tasks)
    ]


def build_edges(tasks: int, edges: int, rng: random.Random) -> list[Edge]:
    """Distinct random edges, each from a task to one in the few layers above it (so it is a DAG)."""
    bounds = layer_bounds(tasks)
    layer_of = [layer for layer in range(len(bounds) - 1) for _ in range(bounds[layer], bounds[layer + 1])]
    first_dependent = bounds[1]
    if first_dependent >= tasks:
        return []
    chosen: set[tuple[int, int]] = set()
    limit = edges * 20  # give up rather than spin if the request is denser than the layout allows
    while len(chosen) < edges and limit:
        limit -= 1
        task = rng.randrange(first_dependent, tasks)
        layer = layer_of[task]
        dep = rng.randrange(bounds[max(layer - LAYER_REACH, 0)], bounds[layer])
        chosen.add((task, dep))
    return [Edge(f"T{t}", f"T{d}", "soft" if (t + d) % 10 == 0 else "hard") for t, d in chosen]


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def measure(nodes: list[Node], edges: list[Edge], repeat: int) -> Timings:
    best = Timings()
    for _ in range(repeat):
        start = time.perf_counter()
        graph = DependencyGraph(nodes, edges)
        construct = time.perf_counter() - start
        # Each step reuses the cached analysis, so every timing covers only its own work.
        analyze = timed(graph.analyze)
        critical = timed(graph.critical_path)
        ascii_ = timed(graph.to_ascii)
        best.construct = min(best.construct, construct)
        best.analyze = min(best.analyze, analyze)
        best.critical = min(best.critical, critical)
        best.combined = min(best.combined, construct + analyze + critical)
        best.ascii = min(best.ascii, ascii_)
    return best


def run_case(tasks: int, edges: int, seed: int, repeat: int) -> tuple[str, Timings, DependencyGraph]:
    rng = random.Random(seed)
    nodes = build_nodes(tasks, rng)
    edge_list = build_edges(tasks, edges, rng)
    # Shuffled input: real callers do not hand tasks over in topological order.
    rng.shuffle(nodes)
    rng.shuffle(edge_list)
    timings = measure(nodes, edge_list, repeat)
    return f"{tasks} tasks / {len(edge_list)} edges", timings, DependencyGraph(nodes, edge_list)


def print_table(rows: list[tuple[str, Timings]]) -> None:
    header = f"{'case':<28}{'construct':>10}{'analyze':>10}{'critical':>10}{'total':>10}{'ascii':>10}"
    print(header)
    print("-" * len(header))
    for label, t in rows:
        cells = (t.construct, t.analyze, t.critical, t.combined, t.ascii)
        print(f"{label:<28}" + "".join(f"{value:>10.3f}" for value in cells))
    print("(seconds, best of repeats; total = construct + analyze + critical path, what a caller pays)")


def describe(graph: DependencyGraph) -> str:
    path, total = graph.critical_path()
    return f"{len(graph.batches())} batches, critical path {len(path)} tasks / {total:.0f} min"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, help="run a single case with this many tasks")
    parser.add_argument("--edges", type=int, help="edges for --tasks (default: 3 per task)")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--repeat", type=int, default=3)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cases = DEFAULT_CASES
    if args.tasks:
        cases = ((args.tasks, args.edges if args.edges is not None else 3 * args.tasks),)
    rows: list[tuple[str, Timings]] = []
    for tasks, edges in cases:
        label, timings, graph = run_case(tasks, edges, args.seed, max(args.repeat, 1))
        rows.append((label, timings))
        print(f"{label}: {describe(graph)}")
    print_table(rows)
    label, timings = rows[-1]
    verdict = "OK" if timings.combined < GOAL_SECONDS else "TOO SLOW"
    print(f"{label}: build+analyze+critical path {timings.combined:.2f} s (goal < {GOAL_SECONDS:g} s: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
