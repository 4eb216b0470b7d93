"""Task tools: what the agent is asked to do, and how it says it is done, stuck, or has something to note.

The agent's word is recorded, not trusted: "done" only ends the session; the orchestrator re-runs the
acceptance tests itself before the task counts as done.
"""

from __future__ import annotations

import json
from typing import Literal

import pydantic

from apps.agents.tools.base import Input, Tool, ToolContext
from apps.core.errors import ValidationError


class NoInput(Input):
    pass


class StatusInput(Input):
    status: Literal["done", "blocked"]
    evidence: str = pydantic.Field(min_length=1, description="What was built and the test output that shows it.")


class TestResultInput(Input):
    test: int = pydantic.Field(ge=1, description="1-based index of the acceptance test (see get_task).")
    passed: bool
    output: str = ""


class NoteInput(Input):
    note: str = pydantic.Field(min_length=1)


class HelpInput(Input):
    reason: str = pydantic.Field(min_length=1, description="What blocks you and what a person should do.")


def _task(context: ToolContext):
    if context.task is None:
        raise ValidationError("this session has no task", code="no_task")
    return context.task


def get_task(context: ToolContext, args: NoInput) -> str:
    task = _task(context)
    dependencies = task.dependencies.select_related("depends_on").order_by("depends_on__position")
    return json.dumps({
        "key": task.key, "title": task.title, "description": task.description, "epic": task.epic.title,
        "domain": task.domain,
        "depends_on": [{"key": d.depends_on.key, "title": d.depends_on.title, "status": d.depends_on.status}
                       for d in dependencies],
        "acceptance_tests": [{"test": i, "description": t.description, "command": t.command}
                             for i, t in enumerate(task.tests.order_by("position"), 1)],
    }, indent=2)


def update_task_status(context: ToolContext, args: StatusInput) -> str:
    _task(context)
    if args.status == "blocked":
        context.state["help"] = f"the agent reports the task blocked: {args.evidence}"
        return "recorded: blocked; a person will be asked to look at it"
    context.state["reported"] = {"status": "done", "evidence": args.evidence}
    return "recorded: done. The acceptance tests will be re-run before the task counts as done; end your turn."


def record_test_result(context: ToolContext, args: TestResultInput) -> str:
    count = _task(context).tests.count()
    if args.test > count:
        raise ValidationError(f"test {args.test} does not exist; this task has {count} acceptance tests",
                              code="no_such_test")
    context.state.setdefault("test_results", {})[str(args.test)] = {"passed": args.passed, "output": args.output}
    return f"recorded test {args.test}: {'passed' if args.passed else 'failed'}"


def add_note(context: ToolContext, args: NoteInput) -> str:
    context.state.setdefault("notes", []).append(args.note)
    return "noted"


def request_help(context: ToolContext, args: HelpInput) -> str:
    context.state["help"] = args.reason
    return "a person has been asked; the session pauses here and resumes with their answer"


TASK_TOOLS = (
    Tool("get_task", "Your task: title, description, dependencies and acceptance tests.", NoInput, get_task),
    Tool("update_task_status", "Report the task done (with evidence) or blocked. Call it once the acceptance "
         "tests pass.", StatusInput, update_task_status),
    Tool("record_test_result", "Record the result of one acceptance test you ran.", TestResultInput,
         record_test_result),
    Tool("add_note", "Leave a note for the people running the project.", NoteInput, add_note),
    Tool("request_help", "Ask a person for help when you are stuck (the session pauses).", HelpInput, request_help),
)
