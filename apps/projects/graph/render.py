"""Text helpers of the graph's views: mermaid ids, escapes and highlights, and the ascii view's wording."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apps.projects.graph.model import Node

_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_]")

# Mermaid entity codes; '#' first-class too, since it starts an entity itself.  Newlines would
# end the statement, so they become spaces.
_MERMAID_ESCAPES = str.maketrans(
    {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "`": "#96;", "\n": " ", "\r": " "}
)


def mermaid_escape(text: str) -> str:
    return text.translate(_MERMAID_ESCAPES)


def unique_ids(names: list[str], prefix: str) -> dict[str, str]:
    """Mermaid-safe ids; the prefix keeps keywords like ``end`` from being ids."""
    ids: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        base = prefix + _UNSAFE_ID.sub("_", name)
        candidate, suffix = base, 1
        while candidate in taken:  # "T-1" and "T_1" sanitize to the same id
            suffix += 1
            candidate = f"{base}_{suffix}"
        taken.add(candidate)
        ids[name] = candidate
    return ids


def mermaid_node(node: Node, ids: dict[str, str], indent: str) -> str:
    label = f"{node.key}: {node.title}" if node.title else node.key
    return f'{indent}{ids[node.key]}["{mermaid_escape(label)}"]'


def mermaid_highlight(path: list[str], ids: dict[str, str], edges: list[tuple[str, str]]) -> list[str]:
    lines = [
        "    classDef critical fill:#fde2e1,stroke:#c0392b,stroke-width:2px",
        f"    class {','.join(ids[key] for key in path)} critical",
    ]
    on_path = set(zip(path, path[1:], strict=False))
    links = [str(n) for n, pair in enumerate(edges) if pair in on_path]
    if links:  # linkStyle addresses edges by their order of appearance
        lines.append(f"    linkStyle {','.join(links)} stroke:#c0392b,stroke-width:2px")
    return lines


def unmarked(label: str) -> str:
    return label.removesuffix("~")


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def minutes(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")
