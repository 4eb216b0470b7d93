"""Behaviour of the dependency resolver (apps.projects.graph): plain tests, no database."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.projects.graph import CycleError, DependencyGraph, Edge, GraphAnalysis, Node

PROPERTY_SETTINGS = settings(max_examples=100, deadline=None)


def graph(keys: str | list[str], *deps: tuple[str, str] | tuple[str, str, str]) -> DependencyGraph:
    """Build a graph from keys ("ABC" or a list) and (task, depends_on[, kind]) tuples."""
    return DependencyGraph([Node(key) for key in keys], [Edge(*dep) for dep in deps])


def batch_of(batches: list[list[str]]) -> dict[str, int]:
    return {key: number for number, batch in enumerate(batches) for key in batch}


# -- batches ----------------------------------------------------------------------------------------


def test_it_puts_independent_tasks_in_one_batch() -> None:
    assert graph("CAB").batches() == [["A", "B", "C"]]


def test_it_runs_a_linear_chain_in_sequential_batches() -> None:
    chain = graph("ABCD", ("B", "A"), ("C", "B"), ("D", "C"))

    assert chain.batches() == [["A"], ["B"], ["C"], ["D"]]
    assert chain.analyze().order == ["A", "B", "C", "D"]


def test_it_schedules_a_diamond_in_three_batches() -> None:
    diamond = graph("ABCD", ("B", "A"), ("C", "A"), ("D", "B"), ("D", "C"))

    assert diamond.batches() == [["A"], ["B", "C"], ["D"]]


def test_it_orders_a_batch_by_priority_then_key() -> None:
    nodes = [Node("A", priority=2), Node("B", priority=0), Node("C", priority=1), Node("D", priority=0)]

    assert DependencyGraph(nodes, []).batches() == [["B", "D", "C", "A"]]


def test_it_returns_an_empty_plan_for_an_empty_graph() -> None:
    empty = DependencyGraph([], [])

    assert empty.analyze() == GraphAnalysis(batches=[], order=[], cycles=[], missing=[])
    assert empty.critical_path() == ([], 0.0)


def test_soft_dependencies_also_order_batches() -> None:
    soft = graph("AB", ("B", "A", "soft"))

    assert soft.batches() == [["A"], ["B"]]


def test_it_caches_the_analysis() -> None:
    chain = graph("AB", ("B", "A"))

    assert chain.analyze() is chain.analyze()


def test_returned_batches_are_copies_that_do_not_corrupt_the_cache() -> None:
    chain = graph("AB", ("B", "A"))
    chain.batches()[0].append("Z")

    assert chain.batches() == [["A"], ["B"]]


# -- missing dependencies and cycles ----------------------------------------------------------------


def test_it_reports_and_ignores_missing_dependencies() -> None:
    g = graph("AB", ("B", "A"), ("B", "X"), ("Y", "A"))

    assert g.missing() == [("B", "X"), ("Y", "A")]
    assert g.batches() == [["A"], ["B"]]
    assert not g.analyze().ok
    assert all(edge.depends_on != "X" for edge in g.edges)


def test_it_reports_a_self_dependency_as_a_cycle() -> None:
    g = graph("AB", ("A", "A"))

    assert g.cycles() == [["A"]]
    assert g.batches() == [["B"]]


def test_it_reports_a_three_cycle_with_its_members_and_leaves_them_unscheduled() -> None:
    # C -> B -> A -> C, plus D downstream of the cycle and E independent.
    g = graph("ABCDE", ("A", "C"), ("B", "A"), ("C", "B"), ("D", "C"))
    analysis = g.analyze()

    assert analysis.cycles == [["A", "B", "C"]]
    assert analysis.batches == [["E"]]
    assert not analysis.ok


def test_it_reports_each_cycle_separately() -> None:
    g = graph("ABCDE", ("A", "B"), ("B", "A"), ("C", "D"), ("D", "E"), ("E", "C"), ("C", "A"))

    assert g.cycles() == [["A", "B"], ["C", "D", "E"]]


def test_an_acyclic_graph_without_missing_dependencies_is_ok() -> None:
    assert graph("AB", ("B", "A")).analyze().ok


# -- construction ----------------------------------------------------------------------------------


def test_duplicate_node_keys_raise_a_value_error_naming_them() -> None:
    with pytest.raises(ValueError, match="A, B"):
        DependencyGraph([Node("A"), Node("B"), Node("A"), Node("B"), Node("C")], [])


def test_duplicate_edges_collapse_and_hard_wins_over_soft() -> None:
    g = graph("AB", ("B", "A", "soft"), ("B", "A", "hard"), ("B", "A", "soft"))

    assert g.edges == [Edge("B", "A", "hard")]


def test_an_unknown_edge_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="maybe"):
        graph("AB", ("B", "A", "maybe"))


def test_edges_only_contain_edges_between_known_nodes() -> None:
    g = graph("AB", ("B", "A"), ("B", "Z"))

    assert g.edges == [Edge("B", "A")]
    assert set(g.nodes) == {"A", "B"}


# -- critical path ---------------------------------------------------------------------------------


def test_critical_path_follows_estimates_not_task_count() -> None:
    # A -> B -> C -> D is the longest chain by count (3 min), but X -> Y weighs 50 min.
    nodes = [Node(key, estimate=1) for key in "ABCD"] + [Node("X", estimate=20), Node("Y", estimate=30)]
    edges = [Edge("B", "A"), Edge("C", "B"), Edge("D", "C"), Edge("Y", "X")]

    assert DependencyGraph(nodes, edges).critical_path() == (["X", "Y"], 50.0)


def test_critical_path_is_listed_prerequisite_first() -> None:
    nodes = [Node("A", estimate=5), Node("B", estimate=10), Node("C", estimate=1)]
    edges = [Edge("B", "A"), Edge("C", "B"), Edge("C", "A")]

    assert DependencyGraph(nodes, edges).critical_path() == (["A", "B", "C"], 16.0)


def test_critical_path_breaks_ties_by_key() -> None:
    g = graph("ABCD", ("D", "B"), ("D", "A"), ("C", "B"), ("C", "A"))

    assert g.critical_path() == (["A", "C"], 2.0)


def test_critical_path_treats_negative_estimates_as_zero() -> None:
    nodes = [Node("A", estimate=-10), Node("B", estimate=3)]

    assert DependencyGraph(nodes, [Edge("B", "A")]).critical_path() == (["A", "B"], 3.0)


def test_critical_path_raises_cycle_error_on_a_cyclic_graph() -> None:
    g = graph("ABC", ("A", "B"), ("B", "A"))

    with pytest.raises(CycleError) as raised:
        g.critical_path()

    assert raised.value.cycles == [["A", "B"]]
    assert isinstance(raised.value, ValueError)


# -- mermaid ---------------------------------------------------------------------------------------


def sample_graph() -> DependencyGraph:
    nodes = [
        Node("T0", estimate=10, group="E1", title="Set up"),
        Node("T1", estimate=20, group="E1", title='Say "hi" [now] <b>'),
        Node("T2", estimate=5, group="E2", title="Docs"),
        Node("T3", estimate=15, title="Release"),
        Node("T-4", estimate=1, title="Loose end"),
    ]
    edges = [Edge("T1", "T0"), Edge("T3", "T1"), Edge("T3", "T2", "soft"), Edge("T-4", "T2")]
    return DependencyGraph(nodes, edges)


def test_mermaid_has_a_subgraph_per_group() -> None:
    text = sample_graph().to_mermaid()

    assert text.startswith("graph TD\n")
    assert re.search(r'subgraph g_E1\["E1"\]\n\s+n_T0\["T0: Set up"\]\n\s+n_T1\[.*\]\n\s+end', text)
    assert 'subgraph g_E2["E2"]' in text


def test_mermaid_quotes_and_escapes_labels() -> None:
    text = sample_graph().to_mermaid()

    assert 'n_T1["T1: Say #quot;hi#quot; [now] #lt;b#gt;"]' in text
    assert 'n_T_4["T-4: Loose end"]' in text  # the id is sanitized, the label keeps the key


def test_mermaid_draws_hard_edges_solid_and_soft_edges_dotted() -> None:
    text = sample_graph().to_mermaid()

    assert "n_T0 --> n_T1" in text
    assert "n_T2 -.-> n_T3" in text


def test_mermaid_marks_the_critical_path() -> None:
    text = sample_graph().to_mermaid()

    assert "classDef critical" in text
    assert "class n_T0,n_T1,n_T3 critical" in text


def test_mermaid_can_skip_the_critical_highlight() -> None:
    assert "critical" not in sample_graph().to_mermaid(highlight_critical=False)


def test_mermaid_ids_stay_unique_after_sanitizing() -> None:
    text = graph(["T-1", "T_1", "T.1"]).to_mermaid()
    ids = re.findall(r"^\s+(n_\w+)\[", text, flags=re.MULTILINE)

    assert len(ids) == len(set(ids)) == 3


def test_mermaid_still_renders_a_cyclic_graph() -> None:
    text = graph("AB", ("A", "B"), ("B", "A")).to_mermaid()

    assert "n_A --> n_B" in text
    assert "n_B --> n_A" in text
    assert "critical" not in text


# -- ascii -----------------------------------------------------------------------------------------


def test_ascii_lists_every_task_by_batch_with_its_dependencies() -> None:
    text = sample_graph().to_ascii()

    assert "Batch 1 (2 tasks)" in text
    assert "Batch 3 (1 task)" in text
    assert "  T0   [E1] Set up" in text
    assert "  T3   Release  <- T1, T2~" in text
    for key in ("T0", "T1", "T2", "T3", "T-4"):
        assert re.search(rf"^  {re.escape(key)} ", text, flags=re.MULTILINE)


def test_ascii_ends_with_the_critical_path() -> None:
    lines = sample_graph().to_ascii().splitlines()

    assert lines[-1] == "Critical path: T0 -> T1 -> T3 (45 min)"


def test_ascii_lists_unscheduled_tasks_cycles_and_missing_dependencies() -> None:
    text = graph("ABC", ("A", "B"), ("B", "A"), ("C", "Q")).to_ascii()

    assert re.search(r"^  A +<- B$", text, flags=re.MULTILINE)
    assert "cycle: A, B" in text
    assert "C <- Q (unknown task)" in text
    assert text.splitlines()[-1] == "Critical path: unavailable (dependency cycle)"


# -- properties ------------------------------------------------------------------------------------

KINDS = st.sampled_from(["hard", "soft"])


@st.composite
def dags(draw: st.DrawFn, min_size: int = 1) -> tuple[list[Node], list[Edge]]:
    """Random DAGs: an edge always points from a higher index to a lower one."""
    size = draw(st.integers(min_value=min_size, max_value=25))
    nodes = [
        Node(
            f"K{i}",
            priority=draw(st.integers(min_value=-2, max_value=2)),
            estimate=draw(st.integers(min_value=-1, max_value=9)),
        )
        for i in range(size)
    ]
    pairs = st.tuples(st.integers(min_value=1, max_value=size - 1), st.integers(0, size - 1), KINDS)
    raw = draw(st.lists(pairs, max_size=size * 3)) if size > 1 else []
    edges = [Edge(f"K{task}", f"K{dep % task}", kind) for task, dep, kind in raw]
    draw(st.randoms()).shuffle(nodes)  # input order must not matter
    return nodes, edges


@st.composite
def graphs_with_a_cycle(draw: st.DrawFn) -> tuple[list[Node], list[Edge], set[str]]:
    nodes, edges = draw(dags(min_size=3))
    keys = sorted(node.key for node in nodes)
    members = draw(st.lists(st.sampled_from(keys), min_size=1, max_size=5, unique=True))
    # Each member depends on the next one, the last on the first: a cycle (a self-loop if alone).
    successors = members[1:] + members[:1]
    ring = [Edge(task, dep, draw(KINDS)) for task, dep in zip(members, successors, strict=True)]
    extra = draw(st.lists(st.tuples(st.sampled_from(keys), st.sampled_from(keys)), max_size=10))
    return nodes, edges + ring + [Edge(task, dep) for task, dep in extra], set(members)


@PROPERTY_SETTINGS
@given(dags())
def test_property_every_task_is_in_exactly_one_batch(dag: tuple[list[Node], list[Edge]]) -> None:
    nodes, edges = dag
    flattened = [key for batch in DependencyGraph(nodes, edges).batches() for key in batch]

    assert sorted(flattened) == sorted(node.key for node in nodes)


@PROPERTY_SETTINGS
@given(dags())
def test_property_prerequisites_run_in_a_strictly_earlier_batch(dag: tuple[list[Node], list[Edge]]) -> None:
    nodes, edges = dag
    g = DependencyGraph(nodes, edges)
    where = batch_of(g.batches())

    assert g.cycles() == []
    assert all(where[edge.depends_on] < where[edge.task] for edge in edges)


@PROPERTY_SETTINGS
@given(dags())
def test_property_batches_are_sorted_by_priority_then_key(dag: tuple[list[Node], list[Edge]]) -> None:
    nodes, edges = dag
    g = DependencyGraph(nodes, edges)

    for batch in g.batches():
        assert batch == sorted(batch, key=lambda key: (g.nodes[key].priority, key))


@PROPERTY_SETTINGS
@given(graphs_with_a_cycle())
def test_property_an_injected_cycle_is_always_reported(case: tuple[list[Node], list[Edge], set[str]]) -> None:
    nodes, edges, members = case
    g = DependencyGraph(nodes, edges)

    assert any(members <= set(cycle) for cycle in g.cycles())
    scheduled = {key for batch in g.batches() for key in batch}
    assert not members & scheduled
    with pytest.raises(CycleError):
        g.critical_path()


@PROPERTY_SETTINGS
@given(graphs_with_a_cycle())
def test_property_scheduled_tasks_still_respect_their_dependencies(
    case: tuple[list[Node], list[Edge], set[str]],
) -> None:
    nodes, edges, _ = case
    where = batch_of(DependencyGraph(nodes, edges).batches())

    for edge in edges:
        if edge.task in where:  # a scheduled task never waits on an unscheduled one
            assert where.get(edge.depends_on, math.inf) < where[edge.task]


@PROPERTY_SETTINGS
@given(dags())
def test_property_critical_path_is_a_heaviest_chain_of_edges(dag: tuple[list[Node], list[Edge]]) -> None:
    nodes, edges = dag
    path, total = DependencyGraph(nodes, edges).critical_path()
    weight = {node.key: max(node.estimate, 0) for node in nodes}
    pairs = {(edge.depends_on, edge.task) for edge in edges}

    assert all(step in pairs for step in zip(path, path[1:], strict=False))
    assert total == sum(weight[key] for key in path)
    assert total == heaviest_chain_weight(weight, pairs)


def heaviest_chain_weight(weight: dict[str, float], pairs: set[tuple[str, str]]) -> float:
    """Brute-force reference: relax every edge until nothing changes (fine for tiny graphs)."""
    best = dict(weight)
    changed = True
    while changed:
        changed = False
        for dep, task in pairs:
            if best[dep] + weight[task] > best[task]:
                best[task] = best[dep] + weight[task]
                changed = True
    return max(best.values(), default=0.0)


@PROPERTY_SETTINGS
@given(dags())
def test_property_analysis_does_not_depend_on_edge_order(dag: tuple[list[Node], list[Edge]]) -> None:
    nodes, edges = dag
    forward = DependencyGraph(nodes, edges)
    backward = DependencyGraph(list(reversed(nodes)), list(reversed(edges)))

    assert forward.analyze() == backward.analyze()
    assert forward.critical_path() == backward.critical_path()
