"""Dependency resolver for YokeFlow task graphs.

Pure Python (stdlib only) so it can run anywhere: inside request handlers, workers, scripts and
benchmarks, without Django being configured.

Design notes
------------
* Task keys are mapped to dense int indices once, in ``(priority, key)`` order.  Every hot loop
  then works on lists of ints, and sorting a batch "by (priority, key)" is a plain ``list.sort()``.
* Both hard and soft edges order the batches: the batch view is the plan view, and a soft
  dependency means "prefer after", which a plan still has to honour.
* Kahn's algorithm produces the batches.  Whatever it cannot place is in a cycle or downstream of
  one, so the (comparatively slow) SCC search only ever runs on that leftover.
* All algorithms are iterative: recursion would overflow on long chains.
* The analysis is computed lazily, once per instance; a graph is immutable after construction.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter

from apps.projects.graph.algorithms import find_cycles, heaviest_chains, kahn_layers
from apps.projects.graph.render import (
    count,
    mermaid_escape,
    mermaid_highlight,
    mermaid_node,
    minutes,
    unique_ids,
    unmarked,
)

__all__ = ["CycleError", "DependencyGraph", "Edge", "GraphAnalysis", "Node"]

HARD = "hard"
SOFT = "soft"
_KINDS = frozenset({HARD, SOFT})
_KEY_OF = attrgetter("key")
_PRIORITY_OF = attrgetter("priority")
_TASK_OF = attrgetter("task")
_DEP_OF = attrgetter("depends_on")
_KIND_OF = attrgetter("kind")
_ESTIMATE_OF = attrgetter("estimate")


@dataclass(frozen=True, slots=True)
class Node:
    key: str
    priority: int = 0  # lower number = more important; orders tasks inside a batch
    estimate: float = 1.0  # minutes; weight of the node on the critical path (clamped at 0)
    group: str = ""  # epic key
    title: str = ""


@dataclass(frozen=True, slots=True)
class Edge:
    task: str  # the dependent task
    depends_on: str  # the prerequisite
    kind: str = HARD  # "hard" | "soft"


@dataclass(frozen=True)
class GraphAnalysis:
    batches: list[list[str]]
    order: list[str]
    cycles: list[list[str]]
    missing: list[tuple[str, str]]

    @property
    def ok(self) -> bool:
        return not self.cycles and not self.missing


class CycleError(ValueError):
    """Raised when an operation needs an acyclic graph; ``cycles`` lists each cycle's members."""

    def __init__(self, cycles: Sequence[Sequence[str]]) -> None:
        self.cycles: list[list[str]] = [list(cycle) for cycle in cycles]
        described = "; ".join(", ".join(cycle) for cycle in self.cycles)
        super().__init__(f"dependency cycle(s): {described}")


class DependencyGraph:
    """An immutable task graph with lazily computed, cached analysis."""

    def __init__(self, nodes: Iterable[Node], edges: Iterable[Edge]) -> None:
        self._nodes: dict[str, Node] = _unique_nodes(nodes)
        # Two stable sorts beat one sort on (priority, key) tuples: no tuple per node.
        by_key = sorted(self._nodes.values(), key=_KEY_OF)
        self._ordered: list[Node] = sorted(by_key, key=_PRIORITY_OF)
        self._keys: list[str] = [node.key for node in self._ordered]
        self._index: dict[str, int] = {key: i for i, key in enumerate(self._keys)}
        # Parallel arrays, one slot per distinct (task, depends_on) pair between known nodes.
        self._src: list[int] = []  # prerequisite index
        self._dst: list[int] = []  # dependent index
        self._hard = bytearray()  # 1 = hard
        self._edges: list[Edge] = []
        self._missing: set[tuple[str, str]] = set()
        self._add_edges(edges)
        self._succ: list[list[int]] | None = None
        self._layers: list[list[int]] = []
        self._blocked: list[int] = []  # nodes Kahn could not place (in or after a cycle)
        self._analysis: GraphAnalysis | None = None
        self._critical: tuple[list[str], float] | None = None

    # -- construction -----------------------------------------------------------------------------

    def _add_edges(self, edges: Iterable[Edge]) -> None:
        # map()/attrgetter keep the per-edge work in C; the Python-level loops below only run
        # for the rare inputs that need them (unknown keys, duplicate pairs).
        edge_list = list(edges)
        _check_kinds(edge_list)
        lookup = self._index.__getitem__
        try:
            dst = list(map(lookup, map(_TASK_OF, edge_list)))
            src = list(map(lookup, map(_DEP_OF, edge_list)))
        except KeyError:
            edge_list, dst, src = self._drop_missing(edge_list)
        hard = bytearray(map(HARD.__eq__, map(_KIND_OF, edge_list)))
        size = len(self._keys)
        codes = [task * size + dep for task, dep in zip(dst, src, strict=True)]
        if len(set(codes)) != len(codes):
            edge_list, dst, src, hard = _collapse_duplicates(codes, edge_list, dst, src, hard)
        self._edges, self._dst, self._src, self._hard = edge_list, dst, src, hard

    def _drop_missing(self, edges: list[Edge]) -> tuple[list[Edge], list[int], list[int]]:
        index = self._index
        known: list[Edge] = []
        for edge in edges:
            if edge.task in index and edge.depends_on in index:
                known.append(edge)
            else:
                self._missing.add((edge.task, edge.depends_on))
        return known, [index[e.task] for e in known], [index[e.depends_on] for e in known]

    # -- public accessors -------------------------------------------------------------------------

    @property
    def nodes(self) -> dict[str, Node]:
        """Nodes by key, in input order.  Shared with the graph: do not mutate."""
        return self._nodes

    @property
    def edges(self) -> list[Edge]:
        """Deduplicated edges between known nodes, in first-seen order."""
        return list(self._edges)

    def analyze(self) -> GraphAnalysis:
        if self._analysis is None:
            self._analysis = self._compute_analysis()
        return self._analysis

    def batches(self) -> list[list[str]]:
        return [list(batch) for batch in self.analyze().batches]

    def cycles(self) -> list[list[str]]:
        return [list(cycle) for cycle in self.analyze().cycles]

    def missing(self) -> list[tuple[str, str]]:
        return list(self.analyze().missing)

    def critical_path(self) -> tuple[list[str], float]:
        """Heaviest chain by summed estimate, prerequisite first.

        Ties are broken towards smaller keys (for the last task, then for each prerequisite), so the
        result depends only on the graph, never on input order.
        """
        analysis = self.analyze()
        if analysis.cycles:
            raise CycleError(analysis.cycles)
        if self._critical is None:
            self._critical = self._compute_critical_path()
        path, total = self._critical
        return list(path), total

    # -- analysis ---------------------------------------------------------------------------------

    def _successors(self) -> list[list[int]]:
        if self._succ is None:
            succ: list[list[int]] = [[] for _ in self._keys]
            for dep, task in zip(self._src, self._dst, strict=True):
                succ[dep].append(task)
            self._succ = succ
        return self._succ

    def _compute_analysis(self) -> GraphAnalysis:
        succ = self._successors()
        in_degree = [0] * len(succ)
        for task in self._dst:
            in_degree[task] += 1
        self._layers = kahn_layers(succ, in_degree)
        # Kahn leaves exactly the nodes that are in, or downstream of, a cycle with in-degree > 0.
        self._blocked = [i for i, degree in enumerate(in_degree) if degree]
        keys = self._keys
        batches = [[keys[i] for i in layer] for layer in self._layers]
        return GraphAnalysis(
            batches=batches,
            order=[key for batch in batches for key in batch],
            cycles=sorted(sorted(keys[i] for i in cycle) for cycle in find_cycles(succ, self._blocked)),
            missing=sorted(self._missing),
        )

    def _compute_critical_path(self) -> tuple[list[str], float]:
        if not self._keys:
            return [], 0.0
        weights = _weights(self._ordered)
        dist, parent = heaviest_chains(self._layers, self._successors(), weights, self._keys)
        keys = self._keys
        heaviest = max(dist)
        end = min((i for i, d in enumerate(dist) if d == heaviest), key=keys.__getitem__)
        path = [end]
        while parent[path[-1]] >= 0:
            path.append(parent[path[-1]])
        path.reverse()
        return [keys[i] for i in path], heaviest

    def _critical_or_none(self) -> tuple[list[str], float] | None:
        # Renderers still work on cyclic graphs (that is when people need a picture most).
        try:
            return self.critical_path()
        except CycleError:
            return None

    # -- mermaid ----------------------------------------------------------------------------------

    def to_mermaid(self, *, highlight_critical: bool = True) -> str:
        ids = unique_ids(sorted(self._nodes), "n_")
        lines = ["graph TD"]
        lines += self._mermaid_nodes(ids)
        edges = sorted(self._edge_pairs())
        lines += [f"    {ids[dep]} {'-->' if hard else '-.->'} {ids[task]}" for dep, task, hard in edges]
        critical = self._critical_or_none() if highlight_critical else None
        if critical and critical[0]:
            lines += mermaid_highlight(critical[0], ids, [(dep, task) for dep, task, _ in edges])
        return "\n".join(lines) + "\n"

    def _edge_pairs(self) -> Iterator[tuple[str, str, bool]]:
        keys = self._keys
        for dep, task, hard in zip(self._src, self._dst, self._hard, strict=True):
            yield keys[dep], keys[task], hard

    def _mermaid_nodes(self, ids: dict[str, str]) -> list[str]:
        by_group: dict[str, list[Node]] = {}
        for key in sorted(self._nodes):
            node = self._nodes[key]
            by_group.setdefault(node.group, []).append(node)
        lines = [mermaid_node(node, ids, "    ") for node in by_group.pop("", [])]
        group_ids = unique_ids(sorted(by_group), "g_")
        for group in sorted(by_group):
            lines.append(f'    subgraph {group_ids[group]}["{mermaid_escape(group)}"]')
            lines += [mermaid_node(node, ids, "        ") for node in by_group[group]]
            lines.append("    end")
        return lines

    # -- ascii ------------------------------------------------------------------------------------

    def to_ascii(self) -> str:
        analysis = self.analyze()
        deps = self._dependency_labels()
        width = max(map(len, self._keys), default=0)
        lines: list[str] = []
        for number, layer in enumerate(self._layers, start=1):
            lines.append(f"Batch {number} ({count(len(layer), 'task')})")
            lines += [self._ascii_task(i, width, deps) for i in layer]
            lines.append("")
        lines += self._ascii_problems(analysis, width, deps)
        lines.append(self._ascii_critical_line())
        return "\n".join(lines) + "\n"

    def _dependency_labels(self) -> list[str]:
        """Per node index: its prerequisites sorted by key, soft ones marked with '~'."""
        keys = self._keys
        names: list[list[str]] = [[] for _ in keys]
        has_soft = bytearray(len(keys))
        for dep, task, hard in zip(self._src, self._dst, self._hard, strict=True):
            if hard:
                names[task].append(keys[dep])
            else:
                names[task].append(keys[dep] + "~")
                has_soft[task] = 1
        # The mark must not affect the order ("T3~" would sort after "T30"), but most tasks have
        # no soft deps, so only they pay for the Python-level sort key.
        return [
            ", ".join(sorted(labels, key=unmarked) if soft else sorted(labels))
            for labels, soft in zip(names, has_soft, strict=True)
        ]

    def _ascii_task(self, i: int, width: int, deps: list[str]) -> str:
        node = self._ordered[i]
        group = f"[{node.group}]" if node.group else ""
        body = " ".join(part for part in (group, node.title) if part)
        arrow = f"<- {deps[i]}" if deps[i] else ""
        return "  ".join(part for part in (f"  {node.key:<{width}}", body, arrow) if part).rstrip()

    def _ascii_problems(self, analysis: GraphAnalysis, width: int, deps: list[str]) -> list[str]:
        lines: list[str] = []
        blocked = self._blocked
        if blocked:
            lines.append(f"Not scheduled, in or after a cycle ({count(len(blocked), 'task')})")
            lines += [self._ascii_task(i, width, deps) for i in blocked]
            lines += [f"  cycle: {', '.join(cycle)}" for cycle in analysis.cycles]
            lines.append("")
        if analysis.missing:
            lines.append(f"Missing dependencies ({len(analysis.missing)})")
            lines += [f"  {task} <- {dep} (unknown task)" for task, dep in analysis.missing]
            lines.append("")
        return lines

    def _ascii_critical_line(self) -> str:
        critical = self._critical_or_none()
        if critical is None:
            return "Critical path: unavailable (dependency cycle)"
        path, total = critical
        return f"Critical path: {' -> '.join(path) or '(none)'} ({minutes(total)} min)"


# -- module helpers -------------------------------------------------------------------------------


def _unique_nodes(nodes: Iterable[Node]) -> dict[str, Node]:
    by_key: dict[str, Node] = {}
    duplicates: set[str] = set()
    for node in nodes:
        if node.key in by_key:
            duplicates.add(node.key)
        else:
            by_key[node.key] = node
    if duplicates:
        raise ValueError(f"duplicate task keys: {', '.join(sorted(duplicates))}")
    return by_key


def _check_kinds(edges: list[Edge]) -> None:
    if set(map(_KIND_OF, edges)) <= _KINDS:
        return
    bad = next(edge for edge in edges if edge.kind not in _KINDS)
    raise ValueError(f"unknown edge kind {bad.kind!r} on {bad.task} -> {bad.depends_on}")


def _collapse_duplicates(
    codes: list[int], edges: list[Edge], dst: list[int], src: list[int], hard: bytearray
) -> tuple[list[Edge], list[int], list[int], bytearray]:
    """Keep the first occurrence of each pair, upgraded to hard if any duplicate is hard."""
    slots: dict[int, int] = {}
    keep: list[int] = []
    strict = bytearray()
    for position, code in enumerate(codes):
        slot = slots.get(code)
        if slot is None:
            slots[code] = len(keep)
            keep.append(position)
            strict.append(hard[position])
        elif hard[position] and not strict[slot]:
            strict[slot] = 1
            keep[slot] = position  # report the hard edge object, in the first one's place
    return [edges[p] for p in keep], [dst[p] for p in keep], [src[p] for p in keep], strict


def _weights(nodes: list[Node]) -> list[float]:
    try:
        # Inline fast path; "e > 0" is also False for NaN, which therefore weighs 0.
        return [e if e > 0 else 0.0 for e in map(_ESTIMATE_OF, nodes)]
    except TypeError:  # None (or another odd value) somewhere: take the careful path
        return [_weight(node.estimate) for node in nodes]


def _weight(estimate: float | None) -> float:
    # A negative (or NaN) weight would make a longer chain look shorter; clamp so adding a task
    # to a chain can never make it lighter.
    if estimate is None or estimate != estimate:
        return 0.0
    return max(float(estimate), 0.0)
