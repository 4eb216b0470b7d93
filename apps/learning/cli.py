"""Verbs for learning and costs: what a project spent and will spend, and what its agents have learned."""

from __future__ import annotations

from typing import Any

from apps.core.errors import ValidationError
from apps.learning import costs, expertise, selectors, services
from apps.projects.models import Domain
from apps.projects.selectors import project_find


def register(subparsers: Any) -> None:
    spend = subparsers.add_parser("costs", help="a project's spend by model, task type and session, its budget, "
                                  "and the forecast for its open tasks")
    spend.add_argument("project", help="project slug or id")
    spend.add_argument("--sessions", type=int, default=10, help="how many of the dearest sessions to list")
    spend.set_defaults(handler=_costs)

    learned = subparsers.add_parser("expertise", help="what the agents learned per domain; with a DOMAIN, its "
                                    "markdown (or --history, --validate, --improve)")
    learned.add_argument("project", help="project slug or id")
    learned.add_argument("domain", nargs="?", help=f"one of {', '.join(Domain.values)}")
    action = learned.add_mutually_exclusive_group()
    action.add_argument("--history", action="store_true", help="the domain's changes, newest first")
    action.add_argument("--validate", action="store_true", help="drop missing files and stale failures")
    action.add_argument("--improve", action="store_true", help="scan the repository for the domain's files")
    learned.set_defaults(handler=_expertise)


def _costs(options: dict[str, Any], out: Any) -> None:
    project = project_find(options["project"])
    summary = costs.costs_summary(project=project, sessions=max(1, min(options["sessions"], 200)))
    budget = summary.budget
    limit = f" of ${budget.budget_usd:.2f} ({budget.used:.0%})" if budget.budget_usd is not None else ""
    simulated = f", ${summary.simulated_usd:.4f} of it replayed (not charged)" if summary.simulated_usd else ""
    out.write(f"{project.slug}: ${summary.total_usd:.4f} spent{limit} in {summary.calls} calls{simulated}; "
              f"{summary.cache_read_share:.0%} of prompt tokens read from the cache")
    _table(out, "by model", [(r["model"], r["calls"], r["cost_usd"]) for r in summary.by_model])
    _table(out, "by task type", [(r["task_type"], r["calls"], r["cost_usd"]) for r in summary.by_task_type])
    _table(out, "dearest sessions", [(f"#{r['session_id']} {r['task'] or r['kind']} {r['tier'] or r['model']} "
                                      f"{r['status']}", r["calls"], r["cost_usd"]) for r in summary.by_session])
    out.write(costs.forecast_line(costs.cost_forecast(project=project)))


def _table(out: Any, title: str, rows: list[tuple[str, int, Any]]) -> None:
    if not rows:
        return
    out.write(f"{title}:")
    for name, calls, cost in rows:
        out.write(f"  {name:<48} {calls:>6} calls {'$' + format(cost, '.4f'):>12}")


def _expertise(options: dict[str, Any], out: Any) -> None:
    project = project_find(options["project"])
    domain = options["domain"]
    if domain is None:
        if options["history"] or options["validate"] or options["improve"]:
            raise ValidationError("domain: name the domain to act on", code="invalid_fields")
        for file in selectors.expertise_all(project=project):
            counts = ", ".join(f"{len(items)} {name.replace('_', ' ')}" for name, items in file.content.items())
            validated = file.validated_at.strftime("%Y-%m-%d %H:%M") if file.validated_at else "never"
            out.write(f"{file.domain:<11} v{file.version:<4} {file.line_count:>5} lines  validated {validated:<16} "
                      f"{counts}")
        return
    if domain not in Domain.values:
        raise ValidationError(f"domain: {domain!r} is not one of {', '.join(Domain.values)}", code="invalid_fields")
    if options["validate"] or options["improve"]:
        file = services.expertise_file(project=project, domain=domain)
        act = services.validate_expertise if options["validate"] else services.self_improve
        update = act(expertise=file)
        out.write(f"{project.slug}/{domain} v{update.version}: {update.summary}")
        return
    if options["history"]:
        for update in selectors.expertise_history(project=project, domain=domain, limit=50):
            out.write(f"v{update.version:<4} {update.created:%Y-%m-%d %H:%M} {update.change_type:<9} {update.summary}")
        return
    file = selectors.expertise_read(project=project, domain=domain)
    out.write(expertise.render_markdown(file.content).rstrip() or f"nothing learned about {domain} yet")
