"""The interventions page: paused sessions with their blockers, resume with notes, approve more budget."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.core.errors import NotFoundError, YokeFlowError, http_status
from apps.dashboard.forms import BudgetApproveForm, ResumeForm
from apps.interventions import selectors as pauses
from apps.interventions.models import PausedSession
from apps.interventions.services import budget_approve as budget_approve_service
from apps.interventions.services import pause_resolve
from apps.projects import selectors
from apps.projects.permissions import Act, allowed

# Blocker keys the card shows in their own rows; any other key is listed after them.
BLOCKER_SHOWN = frozenset({"command", "pattern", "match", "tool", "port", "module", "files", "advice",
                           "output_tail", "output", "retry_stats", "recovery", "can_auto_resume"})


def interventions(request: HttpRequest) -> HttpResponse:
    return _interventions_page(request)


@require_POST
def intervention_resume(request: HttpRequest, pause_id: int) -> HttpResponse:
    """Resolve the pause, which continues its session; a refusal re-renders the page with the reason."""
    form = ResumeForm(request.POST)
    try:
        pause = pauses.pause_get(user=request.user, pause_id=pause_id, operate=True)
        values = form.checked()
        pause = pause_resolve(pause=pause, by=values["resolved_by"], notes=values["notes"])
    except NotFoundError as exc:
        raise Http404(exc.message) from None
    except YokeFlowError as exc:  # already resolved 409, no name 422, viewer 403: never a 500
        form.take(exc)
        failed = {"form": "resume", "pause_id": pause_id, "bound": form}
        return _interventions_page(request, status=http_status(exc), error=exc.message, failed=failed)
    notice = f"Session #{pause.session_id} continues"
    if request.htmx:
        return _interventions_page(request, notice=notice)
    messages.success(request, notice)
    return redirect(f"{reverse('dashboard:interventions')}?{request.GET.urlencode()}")


@require_POST
def budget_approve(request: HttpRequest, slug: str) -> HttpResponse:
    """Raise the project's budget by the amount and continue its budget pauses; a refusal shows the reason.

    The project dashboard's form sends `next`: it comes back there, with the outcome as a message."""
    form = BudgetApproveForm(request.POST, request=request)
    back = form.back()
    try:
        project = selectors.project_get(user=request.user, project_id=slug, act=Act.BUDGET)
        values = form.checked()
        result = budget_approve_service(project=project, amount=values["amount"], by=request.user.get_username(),
                                        notes=values["notes"])
    except NotFoundError as exc:
        raise Http404(exc.message) from None
    except YokeFlowError as exc:  # bad amount 422, no budget 409, viewer 403
        if back:
            messages.error(request, exc.message)
            return redirect(back)
        form.take(exc)
        failed = {"form": "budget", "pause_id": form.cleaned_data.get("pause_id"), "bound": form}
        return _interventions_page(request, status=http_status(exc), error=exc.message, failed=failed)
    notice = (f"Budget of {project.name} raised to ${result.budget_usd}; {len(result.resumed)} session(s) "
              f"continue" + (f", {len(result.still_paused)} still short" if result.still_paused else ""))
    if request.htmx:
        return _interventions_page(request, notice=notice)
    messages.success(request, notice)
    return redirect(back or f"{reverse('dashboard:interventions')}?{request.GET.urlencode()}")


def _interventions_page(request: HttpRequest, *, status: int = 200, **extra: Any) -> HttpResponse:
    """The pauses of the chosen tab and project; htmx polls get only the list (history stops polling: 286)."""
    tab = "history" if request.GET.get("tab") == "history" else "active"
    slug = request.GET.get("project", "").strip()
    try:
        rows = _pauses_of(request, tab, slug)
        missing = ""
    except NotFoundError:  # an unknown (or invisible) project filters down to nothing, not to an error page
        rows, missing = [], slug
    failed = extra.get("failed") or {}
    for pause in rows:  # which of this card's forms comes back refused: "resume" (its dialog reopens), "budget", ""
        pause.failed_form = failed.get("form", "") if failed.get("pause_id") == pause.pk else ""
    context = {"tab": tab, "project_slug": slug, "missing_project": missing, "pauses": rows, **extra}
    if request.htmx:
        polled_history = tab == "history" and status == 200
        return render(request, "dashboard/interventions.html#pauses", context, status=286 if polled_history else status)
    context["projects"] = selectors.projects_visible_to(request.user).order_by("name")
    context["active_pause_count"] = (len(rows) if tab == "active" and not slug
                                     else pauses.pauses_active(user=request.user).count())
    return render(request, "dashboard/interventions.html", context, status=status)


def _pauses_of(request: HttpRequest, tab: str, slug: str) -> list[PausedSession]:
    """The pauses with what the cards need: may this user resume them, and the blocker keys not shown above."""
    if tab == "history":
        rows = list(pauses.pauses_history(user=request.user, project_id=slug or None))
    else:
        rows = list(pauses.pauses_active(user=request.user, project_id=slug or None))
    projects = {pause.project_id: pause.project for pause in rows}
    operable = {pk for pk, project in projects.items() if selectors.can_operate(request.user, project)}
    budgets = {pk for pk, project in projects.items() if allowed(request.user, project, Act.BUDGET)}
    for pause in rows:
        pause.can_resume = not pause.resolved and pause.project_id in operable
        pause.can_approve = not pause.resolved and pause.project_id in budgets
        info = pause.blocker_info if isinstance(pause.blocker_info, dict) else {}
        pause.blocker_extra = sorted(((key, value) for key, value in info.items()
                                      if key not in BLOCKER_SHOWN and value not in (None, "", [], {})),
                                     key=lambda item: item[0])
    return rows
