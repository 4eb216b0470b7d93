"""The expertise pages: every domain's file with its version, size and validation; one domain's content, its
learning history, and a hand edit (or a validation / repository scan) that saves a new version."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.core.errors import YokeFlowError, http_status
from apps.dashboard.forms import SUMMARY_MAX, ExpertiseActionForm, ExpertiseEditForm
from apps.dashboard.views.common import project_context, project_for
from apps.learning import selectors as learning_read
from apps.learning import services as learning
from apps.learning.expertise import render_markdown
from apps.learning.models import ExpertiseFile
from apps.projects.models import Domain, Project

# --- the list of domains ---------------------------------------------------------------------------------------

def expertise(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for(request, slug)
    files = learning_read.expertise_all(project=project)
    saved = [f for f in files if f.pk]  # expertise_all fills unknown domains with unsaved empty files
    last = learning_read.expertise_last_changes(saved)
    for file in saved:
        file.last_change = last.get(file.pk)
        file.fill = _fill(file.line_count)
    context = {**project_context(request, project, "expertise"), "files": saved,
               "missing": [f.domain for f in files if not f.pk], "max_lines": settings.EXPERTISE_MAX_LINES}
    return render(request, "dashboard/expertise.html", context)


def _fill(lines: int) -> int:
    """How full the file is against the line cap, in percent (for the bar), never above 100."""
    return min(100, round(100 * lines / settings.EXPERTISE_MAX_LINES))


# --- one domain ------------------------------------------------------------------------------------------------

def expertise_domain(request: HttpRequest, slug: str, domain: str) -> HttpResponse:
    project = project_for(request, slug)
    _check_domain(domain)
    return _domain_page(request, project, domain)


@require_POST
def expertise_edit(request: HttpRequest, slug: str, domain: str) -> HttpResponse:
    """`action` edit (the default), validate or improve; a refusal re-renders the domain page with the reason."""
    project = project_for(request, slug)  # an invisible project is a 404 before anything else
    _check_domain(domain)
    actions = ExpertiseActionForm(request.POST)
    edit = ExpertiseEditForm(request.POST) if actions.is_valid() and actions.cleaned_data["action"] == "edit" else None
    try:
        project_for(request, slug, operate=True)  # a viewer gets the selectors' PermissionDeniedError (403)
        notice = _act(request, project, domain, actions.checked()["action"], edit)
    except YokeFlowError as exc:
        return _refused(request, project, domain, exc, edit)
    messages.success(request, notice)
    return redirect("dashboard:expertise_domain", slug=project.slug, domain=domain)


def _check_domain(domain: str) -> None:
    # The URL accepts any slug; only the known domains have pages.
    if domain not in Domain.values:
        raise Http404(f"no expertise domain {domain!r}; known: {', '.join(Domain.values)}")


def _domain_page(request: HttpRequest, project: Project, domain: str, *, status: int = 200,
                 **extra: Any) -> HttpResponse:
    file = learning_read.expertise_read(project=project, domain=domain)
    markdown = render_markdown(file.content)
    context = {**project_context(request, project, "expertise"), "domain": domain, "file": file,
               "markdown": markdown, "sections": _sections(markdown),
               "history": learning_read.expertise_history(project=project, domain=domain),
               "draft": json.dumps(file.content, indent=2, ensure_ascii=False), "summary": "",
               "max_lines": settings.EXPERTISE_MAX_LINES, "summary_max": SUMMARY_MAX, **extra}
    return render(request, "dashboard/expertise_domain.html", context, status=status)


def _sections(markdown: str) -> list[tuple[str, list[str]]]:
    """The markdown as (heading, bullets) pairs, so the page shows headings and lists without a markdown library.
    render_markdown writes only "## " headings, "- " bullets and blank lines."""
    sections: list[tuple[str, list[str]]] = []
    for line in markdown.splitlines():
        if line.startswith("## "):
            sections.append((line[3:], []))
        elif line.startswith("- ") and sections:
            sections[-1][1].append(line[2:])
    return sections


def _refused(request: HttpRequest, project: Project, domain: str, exc: YokeFlowError,
             edit: ExpertiseEditForm | None) -> HttpResponse:
    """The page again with the reason; a refused edit keeps what the person typed so nothing is lost."""
    extra: dict[str, Any] = {"error": exc.message, "fields": sorted((exc.details or {}).get("fields", {}))}
    if edit is not None:
        edit.take(exc)
        extra.update(draft=edit["content"].value() or "", summary=edit["summary"].value() or "", edit_open=True,
                     edit_form=edit)
    return _domain_page(request, project, domain, status=http_status(exc), **extra)


# --- the actions -----------------------------------------------------------------------------------------------

def _act(request: HttpRequest, project: Project, domain: str, action: str, edit: ExpertiseEditForm | None) -> str:
    # One transaction: a refused edit or scan must not leave behind the empty file created to hold it.
    with transaction.atomic():
        file = learning.expertise_file(project=project, domain=domain)
        if edit is not None:
            return _edit(request, file, edit.checked())
        return ACTIONS[action](request, file)


def _edit(request: HttpRequest, file: ExpertiseFile, values: dict[str, Any]) -> str:
    update = learning.expertise_edit(expertise=file, content=values["content"], author=request.user,
                                     summary=values["summary"])
    return f"Saved {file.domain} expertise as version {update.version} ({update.summary})."


def _validate(request: HttpRequest, file: ExpertiseFile) -> str:
    update = learning.validate_expertise(expertise=file)
    return f"{file.domain.capitalize()} expertise {update.summary} (version {update.version})."


def _improve(request: HttpRequest, file: ExpertiseFile) -> str:
    update = learning.self_improve(expertise=file)
    return f"Repository scan for {file.domain}: {update.summary} (version {update.version})."


ACTIONS: dict[str, Callable[[HttpRequest, ExpertiseFile], str]] = {"validate": _validate, "improve": _improve}

