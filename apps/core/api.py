"""Pieces every app's API router shares."""

from __future__ import annotations

from ninja import Field, Schema
from ninja.pagination import PageNumberPagination


class Pages(PageNumberPagination):
    """Page-number pagination with bounds, so an absurd page number is a 422 rather than a database error."""

    class Input(Schema):
        page: int = Field(1, ge=1, le=1_000_000)
        page_size: int | None = Field(None, ge=1, le=1000)
