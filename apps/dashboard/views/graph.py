"""The dependency graph page (being built)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse


def graph(request: HttpRequest, slug: str) -> HttpResponse:
    raise NotImplementedError("the graph page is being built")
