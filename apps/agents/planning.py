"""A planning session (flow 1): the model reads the spec and submits a plan through the `submit_plan` tool.

The tool is offered, never forced (`tool_choice` is refused by current models): a text answer is met with a
request to call it, an invalid plan with the exact problems, and after `MAX_PLAN_TRIES` tries without a valid
plan the session fails. Every attempt stays in the transcript (the tool_use event holds the malformed plan).
A valid plan is imported in one transaction, replacing the project's pending plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic

from apps.agents.loop import session_run
from apps.agents.loop_types import Brief, GiveUp, Guard, LoopConfig, Outcome
from apps.agents.models import AgentSession
from apps.agents.prompts import render, system_blocks
from apps.agents.providers import Provider, provider_for
from apps.agents.tools import Tool, ToolContext
from apps.core.errors import ValidationError
from apps.projects.models import Project
from apps.projects.plan import ImportResult, PlanSpec, PlanValidationError, plan_check, plan_import, plan_parse

MAX_PLAN_TRIES = 3
ASK_FOR_PLAN = "Please submit the plan by calling the submit_plan tool with the whole plan as its input."


class AnyPlan(pydantic.BaseModel):
    """Accepts whatever the model sent, so that every attempt is counted and judged by the plan's own checks."""

    model_config = pydantic.ConfigDict(extra="allow")


def _tries(context: ToolContext) -> int:
    context.state["plan_tries"] = context.state.get("plan_tries", 0) + 1
    return context.state["plan_tries"]


def submit_plan(context: ToolContext, args: AnyPlan) -> str:
    tries = _tries(context)
    data = args.model_dump()
    try:
        problems = plan_check(plan_parse(data))
        if problems:
            raise PlanValidationError(problems)
    except ValidationError as exc:
        context.state["plan_problems"] = exc.message
        if tries >= MAX_PLAN_TRIES:
            context.state["give_up"] = {"reason": "invalid_plan",
                                        "message": f"no valid plan after {tries} tries; last: {exc.message}"}
        raise ValidationError(f"{exc.message}. Fix these problems and call submit_plan again "
                              f"(try {tries} of {MAX_PLAN_TRIES}).", code="plan_refused") from None
    context.state["plan"] = data
    return "plan accepted: end your turn with a one-paragraph summary of the plan"


def _finished(context: ToolContext) -> str | None:
    if "plan" in context.state:
        return None
    tries = _tries(context)  # a text answer instead of a plan counts as a try too
    if tries >= MAX_PLAN_TRIES:
        last = context.state.get("plan_problems", "the model answered in text instead of calling submit_plan")
        raise GiveUp("invalid_plan", f"no valid plan after {tries} tries; last: {last}")
    return ASK_FOR_PLAN


def planning_brief(project: Project) -> Brief:
    tool = Tool("submit_plan", "Submit the whole plan (epics, tasks, dependencies, acceptance tests).", AnyPlan,
                submit_plan, input_schema=PlanSpec.model_json_schema())
    return Brief(
        system=system_blocks("planning_role.md", spec=project.spec),
        opening=render("planning_task.md", project=project),
        tools={tool.name: tool},
        finished=_finished,
        max_reasks=MAX_PLAN_TRIES,
    )


@dataclass
class PlanningResult:
    outcome: Outcome
    imported: ImportResult | None = None


def planning_session_run(
    *, session: AgentSession, provider: Provider | None = None, config: LoopConfig | None = None,
    guards: Sequence[Guard] = (), resume_message: str | None = None, force: bool = False,
) -> PlanningResult:
    project = session.project
    context = ToolContext(session=session, workdir=Path(project.repo_path))
    outcome = session_run(
        session=session, provider=provider or provider_for(project_slug=project.slug, script="planning"),
        brief=planning_brief(project), context=context, config=config, guards=guards,
        resume_message=resume_message, force=force,
    )
    if not outcome.completed:
        return PlanningResult(outcome)
    plan: dict[str, Any] = outcome.state["plan"]
    return PlanningResult(outcome, plan_import(project=project, data=plan, replace=True))
