"""What sessions teach: one expertise file per project and domain, versioned, with the history of its changes.

Costs and prices live in `apps.agents` (the loop writes a cost row per call and must not import learning);
this app reads them to aggregate, forecast and choose models.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.agents.models import AgentSession
from apps.core.models import BaseModel, in_choices
from apps.projects.models import Domain, Project


def empty_expertise() -> dict:
    return {"failures": [], "patterns": [], "core_files": [], "techniques": []}


class ExpertiseFile(BaseModel):
    """The domain's memory for one project. `content` holds four lists (see `expertise.py` for their items);
    `line_count` is the length of its markdown form, the measure the 1,000-line cap applies to."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="expertise_files")
    domain = models.CharField(max_length=16, choices=Domain.choices)
    content = models.JSONField(default=empty_expertise)
    version = models.PositiveIntegerField(default=0)
    line_count = models.PositiveIntegerField(default=0)
    validated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["project", "domain"]
        constraints = [
            models.UniqueConstraint(fields=["project", "domain"], name="expertise_one_per_domain"),
            models.CheckConstraint(condition=in_choices("domain", Domain), name="expertise_domain_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.project.slug}/{self.domain} v{self.version}"


class ChangeType(models.TextChoices):
    LEARNED = "learned", "learned from a session"
    VALIDATED = "validated", "validated against the repository"
    IMPROVED = "improved", "repository scanned"
    EDITED = "edited", "edited by a person"


class ExpertiseUpdate(models.Model):
    """One change of an expertise file: what kind, a one-line summary and the unified diff of its markdown."""

    expertise = models.ForeignKey(ExpertiseFile, on_delete=models.CASCADE, related_name="updates")
    session = models.ForeignKey(AgentSession, on_delete=models.SET_NULL, null=True, blank=True,
                                related_name="expertise_updates")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                               related_name="+")
    version = models.PositiveIntegerField(help_text="The file's version after this change.")
    change_type = models.CharField(max_length=10, choices=ChangeType.choices)
    summary = models.CharField(max_length=500)
    diff = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [
            models.CheckConstraint(condition=in_choices("change_type", ChangeType), name="expertise_change_valid"),
            models.CheckConstraint(condition=~Q(summary=""), name="expertise_update_has_summary"),
        ]

    def __str__(self) -> str:
        return f"{self.expertise} {self.change_type}: {self.summary}"
