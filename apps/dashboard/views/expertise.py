"""The expertise pages (being built)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse


def expertise(request: HttpRequest, slug: str) -> HttpResponse:
    raise NotImplementedError("the expertise page is being built")


def expertise_domain(request: HttpRequest, slug: str, domain: str) -> HttpResponse:
    raise NotImplementedError("the expertise page is being built")


def expertise_edit(request: HttpRequest, slug: str, domain: str) -> HttpResponse:
    raise NotImplementedError("the expertise page is being built")
