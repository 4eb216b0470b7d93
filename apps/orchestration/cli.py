"""Verbs for runs and sessions: plan, run, sessions, transcript, continue, cancel."""

from __future__ import annotations

import json
import time
from typing import Any

from django.db.models import Sum

from apps.agents import selectors as agent_selectors
from apps.agents import services as agent_services
from apps.agents.models import AgentSession
from apps.agents.providers import provider_notice
from apps.core.errors import ConflictError, ValidationError
from apps.learning.costs import cost_forecast, forecast_line
from apps.orchestration import lifecycle, retention, runs, selectors
from apps.orchestration.repository import repo_commits, repo_ensure
from apps.orchestration.worktrees import worktrees_reconcile
from apps.projects.models import Project, Task
from apps.projects.selectors import project_find, project_graph, task_get

POLL_SECONDS = 0.5
WORKER_HINT_AFTER = 15.0


def register(subparsers: Any) -> None:
    worker = subparsers.add_parser("worker", help="run a django-q2 cluster whose processes die with it, reaping "
                                   "dead workers' sessions and merges every REAPER_SECONDS")
    worker.add_argument("--reap-every", type=float, metavar="SECONDS", help="reaper interval (REAPER_SECONDS)")
    worker.set_defaults(handler=_worker)

    plan = subparsers.add_parser("plan", help="plan a project from its spec with a planning session")
    plan.add_argument("project")
    _mode_options(plan)
    plan.set_defaults(handler=_plan)

    run = subparsers.add_parser("run", help="build a planned project: ready tasks run in parallel worktrees up to "
                                "the concurrency limit, each merged into main once verified")
    run.add_argument("project")
    parallel = run.add_mutually_exclusive_group()
    parallel.add_argument("--parallel", dest="parallel", action="store_true", default=None,
                          help="run several agents at once (the project's max_concurrency)")
    parallel.add_argument("--sequential", dest="parallel", action="store_false", help="one task at a time")
    run.add_argument("--max-concurrency", type=int, metavar="N", help="agents at once (1-64; saved on the project)")
    run.add_argument("--strategy", choices=["ready", "batch"],
                     help="ready: start each task once its dependencies are done; batch: Kahn batches with a barrier")
    _mode_options(run)
    run.set_defaults(handler=_run)

    sessions = subparsers.add_parser("sessions", help="list a project's agent sessions")
    sessions.add_argument("project")
    sessions.set_defaults(handler=_sessions)

    transcript = subparsers.add_parser("transcript", help="print a session's transcript")
    transcript.add_argument("session", help="session id")
    transcript.add_argument("--after", type=int, default=0, help="only events after this sequence number")
    transcript.add_argument("--json", action="store_true", help="one JSON object per event")
    transcript.set_defaults(handler=_transcript)

    cont = subparsers.add_parser("continue", help="continue a paused session, or one whose worker died, "
                                 "from its checkpoint")
    cont.add_argument("session", help="session id")
    cont.add_argument("--notes", default="", help="what the agent should know when it continues")
    cont.add_argument("--by", default="", help="who continues it")
    cont.add_argument("--force", action="store_true", help="take over even if its worker's heartbeat is recent")
    _mode_options(cont)
    cont.set_defaults(handler=_continue)

    retry = subparsers.add_parser("retry", help="put a failed, paused or cancelled task back in the queue, or resume "
                                  "the merge of a merging one")
    retry.add_argument("project")
    retry.add_argument("task", help="task key or id")
    retry.set_defaults(handler=_retry)

    cancel = subparsers.add_parser("cancel", help="cancel a project's run, or one session with --session (running "
                                   "agents stop within a turn; their commands are killed)")
    cancel.add_argument("project", nargs="?", help="project slug or id")
    cancel.add_argument("--session", help="cancel only this session (id)")
    cancel.add_argument("--task", help="cancel only this task of the project (key or id), in any state but done")
    cancel.set_defaults(handler=_cancel)

    pause = subparsers.add_parser("pause", help="pause a queued or running session before its next model call "
                                  "(resume it with `yokeflow continue SESSION --notes …`)")
    pause.add_argument("session", help="session id")
    pause.add_argument("--by", required=True, help="who pauses it (shown on the pause)")
    pause.add_argument("--reason", default="", help="why")
    pause.set_defaults(handler=_pause)

    compare = subparsers.add_parser("compare", help="compare the wall-clock time of two completed runs")
    compare.add_argument("baseline", help="project slug (e.g. the sequential run)")
    compare.add_argument("project", help="project slug (e.g. the parallel run)")
    compare.set_defaults(handler=_compare)

    worktrees = subparsers.add_parser("worktrees", help="list a project's worktrees (status, ports, conflicts)")
    worktrees.add_argument("project")
    worktrees.add_argument("--all", action="store_true", help="also merged and removed ones")
    worktrees.add_argument("--reconcile", action="store_true",
                           help="first bring the records in line with `git worktree list` and report differences")
    worktrees.set_defaults(handler=_worktrees)

    prune = subparsers.add_parser("prune", help="delete old history: project events, transcripts and checkpoints of "
                                  "finished sessions, finished job records, merged/removed worktrees, audit events "
                                  f"(open and paused sessions keep theirs; {retention.KEPT_NOTE})")
    prune.add_argument("--older-than", required=True, metavar="AGE", help="an age: 30d, 12h or 2w")
    prune.add_argument("--dry-run", action="store_true", help="only count what would be deleted")
    prune.set_defaults(handler=_prune)


def _mode_options(parser: Any) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--wait", action="store_true", help="queue it for the workers and follow until it ends")
    group.add_argument("--sync", action="store_true", help="run it here, in this process, without a worker")


# ----------------------------------------------------------------------------------------------- printing


def _tokens(count: int) -> str:
    return f"{count / 1000:.1f}k" if count >= 1000 else str(count)


def _session_line(s: AgentSession) -> str:
    what = s.task.key if s.task_id else s.kind
    return (f"#{s.pk:<5} {what:<8} {s.status:<10} turns {s.turns:<3} in {_tokens(s.input_tokens):>6} "
            f"out {_tokens(s.output_tokens):>6} cache r/w {_tokens(s.cache_read_tokens)}/"
            f"{_tokens(s.cache_write_tokens)}  ${s.cost_usd:.4f}  {s.duration_ms / 1000:.1f}s  {s.model_label}"
            + (f"\n        {s.stop_reason}: {s.error}" if s.error else ""))


def _progress(project: Project) -> str:
    tasks = project.tasks.all()
    total, done = tasks.count(), tasks.filter(status=Task.Status.DONE).count()
    width = 24
    filled = width * done // total if total else 0
    running = project.sessions.filter(status="running").select_related("task").order_by("pk")
    doing = "".join(f" · {s.task.key if s.task_id else 'planning'} turn {s.turns}" for s in running)
    spent = project.sessions.aggregate(i=Sum("input_tokens"), o=Sum("output_tokens"), c=Sum("cost_usd"))
    return (f"[{'#' * filled}{'-' * (width - filled)}] {done}/{total} done{doing} · tokens "
            f"{_tokens(spent['i'] or 0)} in / {_tokens(spent['o'] or 0)} out · ${spent['c'] or 0:.4f}")


def _follow(out: Any, is_over: Any, describe: Any) -> None:
    """Print `describe()` whenever it changes until `is_over()`; hint at starting a worker if nothing moves."""
    last, started, moved = "", time.monotonic(), False
    while not is_over():
        line = describe()
        if line != last:
            out.write(line)
            moved, last = moved or bool(last), line
        if not moved and time.monotonic() - started > WORKER_HINT_AFTER:
            out.write("  (nothing has moved yet: is a worker running? start one with `manage.py yokeflow worker`)")
            started = float("inf")
        time.sleep(POLL_SECONDS)
    out.write(describe())


# ----------------------------------------------------------------------------------------------- verbs


def _plan(options: dict[str, Any], out: Any) -> None:
    project = project_find(options["project"])
    out.write(provider_notice())
    started: list[AgentSession] = []
    if options["sync"]:
        runs.jobs_drain(lambda: started.append(runs.planning_start(project=project)))
        _report_planning(out, started[0])
        return
    session = runs.planning_start(project=project)
    out.write(f"planning session #{session.pk} queued for the workers")
    if options["wait"]:
        _follow(out, lambda: _reloaded(session).is_finished or session.status == "paused",
                lambda: _session_line(session))
        _report_planning(out, session)


def _reloaded(session: AgentSession) -> AgentSession:
    session.refresh_from_db()
    return session


def _report_planning(out: Any, session: AgentSession) -> None:
    session.refresh_from_db()
    if session.status != AgentSession.Status.COMPLETED:
        raise ConflictError(f"planning session #{session.pk} {session.status}: {session.error}",
                            code="planning_failed", recoverable=False)
    project = Project.objects.get(pk=session.project_id)
    out.write(f"planned {project.slug}: {project.epics.count()} epics, {project.tasks.count()} tasks "
              f"(session #{session.pk}, {session.turns} turns, ${session.cost_usd:.4f})")


def _run(options: dict[str, Any], out: Any) -> None:
    project = project_find(options["project"])
    out.write(provider_notice())
    out.write(forecast_line(cost_forecast(project=project)))  # what it will likely cost, before it starts

    def start() -> Project:
        return lifecycle.run_start(project=project, parallel=options["parallel"], strategy=options["strategy"],
                                   max_concurrency=options["max_concurrency"])

    if options["sync"]:
        out.write("running in this process (--sync): no worker involved, one task at a time")
        runs.jobs_drain(start, lambda _job: out.write(_progress(project)))
    else:
        started = start()
        limit = started.max_concurrency if started.parallel_enabled else 1
        out.write(f"run of {project.slug} queued for the workers: up to {limit} agents at once, "
                  f"{started.strategy} strategy")
        if not options["wait"]:
            return
        _follow(out, lambda: _project_status(project) != Project.Status.RUNNING, lambda: _progress(project))
    _summary(out, project)


def _project_status(project: Project) -> str:
    project.refresh_from_db(fields=["status"])
    return project.status


def _summary(out: Any, project: Project) -> None:
    project.refresh_from_db()
    sessions = project.sessions.all()
    totals = sessions.aggregate(i=Sum("input_tokens"), o=Sum("output_tokens"), r=Sum("cache_read_tokens"),
                                w=Sum("cache_write_tokens"), c=Sum("cost_usd"))
    done = project.tasks.filter(status=Task.Status.DONE).count()
    commits = repo_commits(repo_ensure(project))
    out.write(f"{project.slug}: {project.status} · {done}/{project.tasks.count()} tasks done · "
              f"{len(commits)} commits · {sessions.count()} sessions")
    out.write(f"tokens: {totals['i'] or 0} in, {totals['o'] or 0} out, {totals['r'] or 0} cache read, "
              f"{totals['w'] or 0} cache write · cost ${totals['c'] or 0:.4f}"
              + (" (estimate: the offline replay model charges nothing)"
                 if sessions.filter(provider="replay").exists() else ""))
    figures = selectors.run_figures(project=project)
    out.write(f"wall clock {figures.wall_s:.1f} s for {figures.work_s:.1f} s of agent time "
              f"({figures.overlap:.2f} agents busy on average)")
    for task in project.tasks.exclude(status=Task.Status.DONE):
        out.write(f"  {task.key} {task.status}: {task.last_error}")
    out.write(f"repository: {project.repo_path}")
    if project.status != Project.Status.COMPLETED:
        raise ConflictError(f"the run of {project.slug} ended {project.status}", code=f"run_{project.status}",
                            recoverable=True)


def _sessions(options: dict[str, Any], out: Any) -> None:
    project = project_find(options["project"])
    rows = list(agent_selectors.sessions_list(project=project))
    if not rows:
        out.write(f"{project.slug} has no sessions yet")
    for session in reversed(rows):
        out.write(_session_line(session))


def _event_text(event: Any) -> str:
    payload = event.payload_shown
    if event.type == "system":
        text = payload.get("text", "")
        body = f"{text[:200]}… ({len(text)} characters; --json shows all)" if len(text) > 200 else text
    elif event.type in ("text", "thinking", "user", "resume"):
        body = payload.get("text", "")
    elif event.type == "tool_use":
        body = f"{payload.get('name')} {json.dumps(payload.get('input'), ensure_ascii=False)[:400]}"
    elif event.type == "tool_result":
        body = ("ERROR " if payload.get("is_error") else "") + str(payload.get("content", ""))[:1500]
    else:
        body = json.dumps(payload, ensure_ascii=False)[:600]
    return f"{event.seq:>5} {event.type:<12} {body}"


def _transcript(options: dict[str, Any], out: Any) -> None:
    session = agent_selectors.session_find(options["session"])
    out.write(f"session #{session.pk} · {session.kind} · {session.status} · {session.model_label}")
    if session.model_reason and not options["json"]:  # --json keeps one header line, then one event a line
        out.write(f"model choice: {session.model_reason}")
    for event in agent_selectors.events_list(session=session, after=options["after"]).iterator():
        if options["json"]:
            out.write(json.dumps({"seq": event.seq, "type": event.type, "payload": event.payload_shown,
                                  "created": event.created.isoformat()}, ensure_ascii=False))
        else:
            out.write(_event_text(event))


def _continue(options: dict[str, Any], out: Any) -> None:
    session = agent_selectors.session_find(options["session"])
    kwargs = {"session": session, "notes": options["notes"], "by": options["by"], "force": options["force"]}
    if options["sync"]:
        runs.jobs_drain(lambda: runs.session_continue(**kwargs))
    else:
        runs.session_continue(**kwargs)
        out.write(f"session #{session.pk} queued to continue from its checkpoint")
        if not options["wait"]:
            return
        _follow(out, lambda: _reloaded(session).is_finished or session.status == "paused",
                lambda: _session_line(session))
    out.write(_session_line(_reloaded(session)))


def _cancel(options: dict[str, Any], out: Any) -> None:
    if options["session"]:
        session = lifecycle.session_kill(session=agent_selectors.session_find(options["session"]))
        state = "cancelled" if session.status == "cancelled" else "asked to stop (its commands are killed)"
        out.write(f"session #{session.pk} {state}")
        return
    if not options["project"]:
        raise ValidationError("give a project, or --session ID", code="missing_argument")
    project = project_find(options["project"])
    if options.get("task"):
        task = runs.task_cancel(task=task_get(project, options["task"]), by=options.get("by") or "cli")
        out.write(f"task {task.key} is {task.status}")
        return
    counts = lifecycle.run_cancel(project=project)
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no open sessions"
    out.write(f"run of {project.slug} cancelled ({summary}); start it again with `yokeflow run {project.slug}`")


def _pause(options: dict[str, Any], out: Any) -> None:
    session = agent_services.session_request_pause(session=agent_selectors.session_find(options["session"]),
                                                   by=options["by"], reason=options["reason"][:200])
    out.write(f"session #{session.pk} pauses before its next model call ({session.pause_requested})")


def _compare(options: dict[str, Any], out: Any) -> None:
    baseline, project = project_find(options["baseline"]), project_find(options["project"])
    slow, fast = (selectors.run_figures(project=p).wall_s for p in (baseline, project))
    if not slow or not fast:
        raise ConflictError("both projects need a finished build to compare", code="nothing_to_compare")
    path, length = project_graph(project).critical_path()
    work = sum(project.tasks.values_list("estimate_minutes", flat=True))
    out.write(f"{project.slug}: {fast:.1f} s · {baseline.slug}: {slow:.1f} s · speedup {slow / fast:.2f}x "
              f"(the plan allows at most {work / length:.2f}x by its estimates: critical path "
              f"{' → '.join(path)})")


def _worktrees(options: dict[str, Any], out: Any) -> None:
    project = project_find(options["project"])
    if options["reconcile"]:
        report = worktrees_reconcile(project=project)
        out.write(f"reconciled: pruned {report.pruned or 'nothing'}; records without a worktree "
                  f"{report.missing or 'none'}; worktrees without a record {report.unknown or 'none'}")
    rows = list(selectors.worktrees_list(project=project, live_only=not options["all"]))
    if not rows:
        out.write(f"{project.slug} has no {'' if options['all'] else 'live '}worktrees")
    for row in rows:
        ports = f"ports {row.ports.start}-{row.ports.stop - 1}" if row.port_base else "no ports"
        git = selectors.worktree_detail(row).git or {}
        state = (f" · {git['ahead']} ahead, {git['behind']} behind{', dirty' if git['dirty'] else ''}"
                 if "ahead" in git else "")
        out.write(f"{row.branch:<40} {row.status:<9} epic {row.epic.key:<6} {ports}{state}")
        if row.conflict_files:
            out.write(f"    conflicts: {', '.join(row.conflict_files)}")


def _retry(options: dict[str, Any], out: Any) -> None:
    project = project_find(options["project"])
    task = runs.task_retry(task=task_get(project, options["task"]), by="cli")
    if task.status in ("merging", "running"):
        out.write(f"task {task.key} is {task.status}: a worker resumes finishing it now")
        return
    out.write(f"task {task.key} is {task.status} again; start the run with `yokeflow run {project.slug}`")


def _worker(options: dict[str, Any], out: Any) -> None:
    from apps.orchestration.worker import worker_run

    every = options.get("reap_every")
    if every is not None and every <= 0:
        raise ValidationError("--reap-every must be positive", code="invalid_argument")
    worker_run(reap_every=every)


def _prune(options: dict[str, Any], out: Any) -> None:
    age = retention.parse_age(options["older_than"])  # before anything is touched: a typo deletes nothing
    counts = retention.prune(older_than=age, dry_run=options["dry_run"])
    verb = "would be deleted" if options["dry_run"] else "deleted"
    for kind, count in counts.items():
        out.write(f"{kind}: {count} {verb}")
    out.write(retention.KEPT_NOTE)
