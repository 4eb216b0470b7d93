"""Shared model base and the API token model."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class BaseModel(models.Model):
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class ApiToken(BaseModel):
    """A per-user bearer token. Only a SHA-256 digest is stored; the token is shown once at creation."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, help_text="First characters of the token, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


def in_choices(field: str, choices: type[models.TextChoices]) -> Q:
    """A check-constraint condition: `field` holds one of `choices` (the database refuses anything else)."""
    return Q(**{f"{field}__in": choices.values})
