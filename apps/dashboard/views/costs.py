"""The costs page (being built)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse


def costs(request: HttpRequest, slug: str) -> HttpResponse:
    raise NotImplementedError("the costs page is being built")
