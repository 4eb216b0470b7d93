"""A coding session: one task, in one working copy, with the file, shell and task tools."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from django.conf import settings

from apps.agents.loop import session_run
from apps.agents.loop_types import Brief, Guard, Hook, LoopConfig, Outcome
from apps.agents.models import AgentSession
from apps.agents.prompts import render, system_blocks
from apps.agents.providers import Provider, provider_for
from apps.agents.tools import ToolContext, coding_tools
from apps.agents.tools.files import walk_files
from apps.projects.models import Task

MAX_FILES_SHOWN = 200
NOT_DONE = (
    "You ended your turn, but the task is not reported done. If every acceptance test passes, call "
    "update_task_status with status \"done\" and the evidence; if something blocks you, call request_help."
)


def _files_overview(workdir: Path) -> str:
    names = []
    for path in walk_files(workdir):
        if len(names) == MAX_FILES_SHOWN:
            names.append("(… more; use list_files)")
            break
        names.append(path.relative_to(workdir).as_posix())
    return "\n".join(f"- {name}" for name in names) or "(empty: you start from scratch)"


def coding_brief(*, task: Task, workdir: Path, branch: str, expertise: str = "") -> Brief:
    opening = render("coding_task.md", task=task, tests=list(task.tests.order_by("position")),
                     workdir_name=workdir.name, branch=branch, files=_files_overview(workdir))
    return Brief(
        system=system_blocks("coding_role.md", spec=task.project.spec, expertise=expertise),
        opening=opening,
        tools=coding_tools(),
        finished=lambda context: None if context.state.get("reported", {}).get("status") == "done" else NOT_DONE,
    )


def coding_session_run(
    *, session: AgentSession, branch: str = "main", expertise: str = "", env: dict[str, str] | None = None,
    home: Path | None = None,
    provider: Provider | None = None, config: LoopConfig | None = None, guards: Sequence[Guard] = (),
    hooks: Sequence[Hook] = (), resume_message: str | None = None, force: bool = False,
) -> Outcome:
    task = Task.objects.select_related("project", "epic").get(pk=session.task_id)
    workdir = Path(session.workdir).resolve()
    context = ToolContext(session=session, workdir=workdir, task=task, home=home or workdir.parent / "home",
                          command_timeout=float(settings.COMMAND_TIMEOUT), env=dict(env or {}),
                          network=task.project.network)
    return session_run(
        session=session, provider=provider or provider_for(project_slug=task.project.slug, script=task.key),
        brief=coding_brief(task=task, workdir=workdir, branch=branch, expertise=expertise), context=context,
        config=config, guards=guards, hooks=hooks, resume_message=resume_message, force=force,
    )

