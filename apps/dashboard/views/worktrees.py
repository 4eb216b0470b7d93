"""The worktrees page (being built)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse


def worktrees(request: HttpRequest, slug: str) -> HttpResponse:
    raise NotImplementedError("the worktrees page is being built")


def worktree_action(request: HttpRequest, slug: str, worktree_id: int, action: str) -> HttpResponse:
    raise NotImplementedError("the worktrees page is being built")
