"""Graph algorithms on dense int indices: Kahn layers, heaviest chains, cycle search (iterative Tarjan).

Kept apart from the key-based `DependencyGraph` so the hot loops stay small and readable; nothing
here knows about task keys, only lists of successor indices.
"""

from __future__ import annotations

from collections.abc import Iterator


def kahn_layers(succ: list[list[int]], in_degree: list[int]) -> list[list[int]]:
    """Layered topological sort; consumes ``in_degree`` (nodes left > 0 could not be placed)."""
    layer = [i for i, degree in enumerate(in_degree) if not degree]
    layers: list[list[int]] = []
    while layer:
        layer.sort()  # indices were assigned in (priority, key) order
        layers.append(layer)
        ready: list[int] = []
        for node in layer:
            for nxt in succ[node]:
                degree = in_degree[nxt] - 1
                in_degree[nxt] = degree
                if not degree:
                    ready.append(nxt)
        layer = ready
    return layers


def heaviest_chains(
    layers: list[list[int]], succ: list[list[int]], weights: list[float], keys: list[str]
) -> tuple[list[float], list[int]]:
    """Per node: weight of the heaviest chain ending there, and that chain's previous node."""
    best_in = [0.0] * len(weights)  # heaviest chain strictly before the node
    parent = [-1] * len(weights)
    dist = [0.0] * len(weights)
    for layer in layers:  # topological order: every prerequisite is final before its dependents
        for node in layer:
            total = best_in[node] + weights[node]
            dist[node] = total
            for nxt in succ[node]:
                current = best_in[nxt]
                if total > current or (
                    total == current and (parent[nxt] < 0 or keys[node] < keys[parent[nxt]])
                ):
                    best_in[nxt] = total
                    parent[nxt] = node
    return dist, parent


def find_cycles(succ: list[list[int]], leftover: list[int]) -> list[list[int]]:
    """Cycles among the nodes Kahn could not place: SCCs of size > 1, plus self-loops."""
    if not leftover:
        return []
    alive = bytearray(len(succ))
    for node in leftover:
        alive[node] = 1
    _trim_sinks(succ, alive, leftover)
    core = [node for node in leftover if alive[node]]
    return [
        component
        for component in _Tarjan(succ, alive).components(core)
        if len(component) > 1 or component[0] in succ[component[0]]
    ]


def _trim_sinks(succ: list[list[int]], alive: bytearray, nodes: list[int]) -> None:
    """Drop nodes that reach no cycle (merely downstream of one) so Tarjan only sees the core."""
    out_degree: dict[int, int] = {}
    preds: dict[int, list[int]] = {node: [] for node in nodes}
    for node in nodes:
        live = [nxt for nxt in succ[node] if alive[nxt]]
        out_degree[node] = len(live)
        for nxt in live:
            preds[nxt].append(node)
    sinks = [node for node in nodes if not out_degree[node]]
    while sinks:
        node = sinks.pop()
        alive[node] = 0
        for pred in preds[node]:
            out_degree[pred] -= 1
            if not out_degree[pred]:
                sinks.append(pred)


class _Tarjan:
    """Iterative Tarjan SCC over the ``alive`` nodes (explicit stack: no recursion limit)."""

    def __init__(self, succ: list[list[int]], alive: bytearray) -> None:
        self.succ = succ
        self.alive = alive
        self.index = [-1] * len(succ)
        self.low = [0] * len(succ)
        self.on_stack = bytearray(len(succ))
        self.stack: list[int] = []
        self.counter = 0
        self.found: list[list[int]] = []

    def components(self, roots: list[int]) -> list[list[int]]:
        for root in roots:
            if self.index[root] < 0:
                self._search(root)
        return self.found

    def _enter(self, node: int, frames: list[tuple[int, Iterator[int]]]) -> None:
        self.index[node] = self.low[node] = self.counter
        self.counter += 1
        self.stack.append(node)
        self.on_stack[node] = 1
        frames.append((node, iter(self.succ[node])))

    def _search(self, root: int) -> None:
        index, low, alive, on_stack = self.index, self.low, self.alive, self.on_stack
        frames: list[tuple[int, Iterator[int]]] = []
        self._enter(root, frames)
        while frames:
            node, children = frames[-1]
            for child in children:  # resumes where this frame left off
                if not alive[child]:
                    continue
                if index[child] < 0:
                    self._enter(child, frames)
                    break
                if on_stack[child] and index[child] < low[node]:
                    low[node] = index[child]
            else:
                frames.pop()
                self._finish(node, frames)

    def _finish(self, node: int, frames: list[tuple[int, Iterator[int]]]) -> None:
        low = self.low
        if frames and low[node] < low[frames[-1][0]]:
            low[frames[-1][0]] = low[node]
        if low[node] != self.index[node]:
            return
        component: list[int] = []
        while True:
            member = self.stack.pop()
            self.on_stack[member] = 0
            component.append(member)
            if member == node:
                break
        self.found.append(component)
