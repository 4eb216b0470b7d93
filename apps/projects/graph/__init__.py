"""The dependency graph of a plan (pure Python, stdlib only): the model and its analysis in `model.py`, the
algorithms in `algorithms.py`, the text of its mermaid and ascii views in `render.py`."""

from apps.projects.graph.model import CycleError, DependencyGraph, Edge, GraphAnalysis, Node

__all__ = ["CycleError", "DependencyGraph", "Edge", "GraphAnalysis", "Node"]
