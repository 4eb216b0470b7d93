"""Verbs for interventions: list the paused sessions, resume one with notes."""

from __future__ import annotations

import functools
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.timesince import timesince

from apps.agents.selectors import project_spent
from apps.core.errors import ValidationError
from apps.core.jobs import jobs_drain
from apps.interventions import selectors, services
from apps.interventions.models import PausedSession, PauseType
from apps.projects.selectors import project_find


def register(subparsers: Any) -> None:
    listing = subparsers.add_parser("interventions", help="list paused sessions waiting for a person (or, with "
                                    "--history, resolved ones)")
    listing.add_argument("--project", help="only this project (slug or id)")
    listing.add_argument("--history", action="store_true", help="resolved pauses, most recent first")
    listing.add_argument("--limit", type=int, default=50, help="how many resolved pauses (1-500)")
    listing.set_defaults(handler=_interventions)

    resume = subparsers.add_parser("resume", help="resolve a pause and continue its session from the checkpoint "
                                   "with your notes as the resume message")
    resume.add_argument("pause", help="intervention (pause) id, as listed by `yokeflow interventions`")
    resume.add_argument("--by", required=True, help="who resolves it")
    resume.add_argument("--notes", default="", help="what was done; the agent reads it when it continues")
    resume.add_argument("--sync", action="store_true", help="run the continuation here, without a worker")
    resume.set_defaults(handler=_resume)

    budget = subparsers.add_parser("budget", help="show a project's budget and spend; --approve AMOUNT raises it "
                                   "and continues the sessions paused for budget")
    budget.add_argument("project", help="project slug or id")
    budget.add_argument("--approve", metavar="AMOUNT", help="dollars to add, e.g. 1 or +1.50")
    budget.add_argument("--by", help="who approves it (required with --approve)")
    budget.add_argument("--notes", default="", help="why; the resumed agents read it")
    budget.add_argument("--sync", action="store_true", help="run the continuations here, without a worker")
    budget.set_defaults(handler=_budget)


def _all_pauses(project_ref: str | None) -> QuerySet[PausedSession]:
    """The command line acts as the operator: every project, filtered by `--project` when given."""
    rows = PausedSession.objects.select_related("project", "session", "current_task")
    return rows.filter(project=project_find(project_ref)) if project_ref else rows


def _line(pause: PausedSession) -> str:
    task = pause.current_task.key if pause.current_task_id else pause.session.kind
    waited = timesince(pause.paused_at, timezone.now())
    state = f"resolved by {pause.resolved_by}" if pause.resolved else f"waiting {waited}"
    auto = " · resumes by itself" if pause.can_auto_resume and not pause.resolved else ""
    return (f"#{pause.pk:<5} {pause.project.slug:<20} {task:<12} {pause.pause_type:<15} session #{pause.session_id}"
            f" · {state}{auto}\n       {pause.pause_reason[:200]}")


def _interventions(options: dict[str, Any], out: Any) -> None:
    rows = _all_pauses(options["project"])
    if options["history"]:
        limit = max(1, min(options["limit"], selectors.HISTORY_LIMIT_MAX))
        rows = rows.filter(resolved=True).order_by("-resolved_at", "-pk")[:limit]
    else:
        rows = rows.filter(resolved=False).order_by("paused_at", "pk")
    pauses = list(rows)
    if not pauses:
        out.write("no resolved pauses" if options["history"] else "no paused sessions: nothing waits for a person")
        return
    for pause in pauses:
        out.write(_line(pause))
    if not options["history"]:
        out.write('resume one with: yokeflow resume ID --by NAME --notes "what you did"')


def _resume(options: dict[str, Any], out: Any) -> None:
    pause = selectors.pause_find(options["pause"])
    resolve = functools.partial(services.pause_resolve, pause=pause, by=options["by"], notes=options["notes"])
    if options["sync"]:
        jobs_drain(resolve)
        pause.session.refresh_from_db()
        out.write(f"pause #{pause.pk} resolved; session #{pause.session_id} is {pause.session.status}")
        return
    resolve()
    out.write(f"pause #{pause.pk} resolved by {options['by']}; session #{pause.session_id} continues from its "
              "checkpoint on a worker")


def _budget(options: dict[str, Any], out: Any) -> None:
    project = project_find(options["project"])
    if options["approve"] is not None:
        if not options["by"]:
            raise ValidationError("--by: say who approves the budget", code="invalid_fields")
        amount = _dollars(options["approve"])
        results: list[services.BudgetApproval] = []

        def approve() -> None:
            results.append(services.budget_approve(project=project, amount=amount, by=options["by"],
                                                   notes=options["notes"]))

        jobs_drain(approve) if options["sync"] else approve()
        result = results[0]
        out.write(f"budget of {project.slug} raised by ${result.approved_usd} to ${result.budget_usd} "
                  f"(${result.spent_usd:.2f} spent)")
        if result.resumed:
            out.write(f"resumed budget pauses: {', '.join(f'#{pk}' for pk in result.resumed)}")
        if result.still_paused:
            out.write(f"still short for pauses: {', '.join(f'#{pk}' for pk in result.still_paused)}; approve more")
        return
    spent = project_spent(project=project)
    if project.budget_usd is None:
        out.write(f"{project.slug}: no budget set; ${spent:.4f} spent")
    else:
        out.write(f"{project.slug}: ${spent:.4f} spent of ${project.budget_usd:.2f} "
                  f"(${project.budget_usd - spent:.4f} left)")
    for pause in _all_pauses(project.slug).filter(resolved=False, pause_type=PauseType.BUDGET):
        out.write(_line(pause))


def _dollars(text: str) -> Decimal:
    """`--approve 5`, `+5` or `$5.50` as a Decimal; anything else is refused with the one line it deserves."""
    try:
        value = Decimal(text.strip().lstrip("+").lstrip("$"))
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite():
        raise ValidationError(f"--approve: {text[:40]!r} is not an amount of dollars (say 5 or 2.50)",
                              code="invalid_fields", details={"fields": {"amount": ["a number of dollars"]}})
    return value
