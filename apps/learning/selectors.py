"""Reading what the project learned: expertise files (an unsaved empty file for a domain with none: reading never
creates rows), their history, each file's newest change, and a domain's expertise as prompt text."""

from __future__ import annotations

from django.db.models import OuterRef, Subquery

from apps.learning.expertise import domain_check, format_for_prompt
from apps.learning.models import ExpertiseFile, ExpertiseUpdate
from apps.projects.models import Domain, Project


def expertise_read(*, project: Project, domain: str) -> ExpertiseFile:
    """The domain's file, or an unsaved empty one (version 0): reading never creates rows."""
    domain_check(domain)
    return ExpertiseFile.objects.filter(project=project, domain=domain).first() or ExpertiseFile(
        project=project, domain=domain)


def expertise_all(*, project: Project) -> list[ExpertiseFile]:
    files = {f.domain: f for f in ExpertiseFile.objects.filter(project=project)}
    return [files.get(domain) or ExpertiseFile(project=project, domain=domain) for domain in Domain.values]


def expertise_history(*, project: Project, domain: str, limit: int = 50) -> list[ExpertiseUpdate]:
    domain_check(domain)
    updates = ExpertiseUpdate.objects.filter(expertise__project=project, expertise__domain=domain)
    return list(updates.select_related("expertise", "session", "author").order_by("-created", "-id")[:limit])


def expertise_last_changes(files: list[ExpertiseFile]) -> dict[int, ExpertiseUpdate]:
    """Each file's newest history entry, by file id, in one query however long the histories are."""
    newest = (ExpertiseUpdate.objects.filter(expertise=OuterRef("expertise"))
              .order_by("-created", "-id").values("pk")[:1])
    rows = ExpertiseUpdate.objects.filter(expertise__in=files, pk=Subquery(newest)).select_related("author")
    return {row.expertise_id: row for row in rows}


def expertise_for_prompt(*, project: Project, domain: str, limit: int | None = None) -> str:
    return format_for_prompt(expertise_read(project=project, domain=domain).content, limit=limit)
