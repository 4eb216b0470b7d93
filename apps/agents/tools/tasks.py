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
from apps.projects.selectors import project_graph, task_statuses


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


GRAPH_NODES_SHOWN = 200  # a bigger plan is shown around this task: its dependencies and its dependents


def get_dependency_graph(context: ToolContext, args: NoInput) -> str:
    """The plan's dependency graph with each task's status, centred on this task."""
    task = _task(context)
    graph, statuses = project_graph(task.project), task_statuses(task.project)
    before = sorted(edge.depends_on for edge in graph.edges if edge.task == task.key)
    after = sorted(edge.task for edge in graph.edges if edge.depends_on == task.key)
    shown = (list(graph.nodes) if len(graph.nodes) <= GRAPH_NODES_SHOWN
             else [task.key, *before, *after])
    return json.dumps({
        "task": task.key, "depends_on": before, "needed_by": after, "tasks_in_plan": len(graph.nodes),
        "nodes": [{"key": key, "title": graph.nodes[key].title, "epic": graph.nodes[key].group,
                   "status": statuses.get(key, "")} for key in shown],
        "edges": [{"task": e.task, "depends_on": e.depends_on, "kind": e.kind} for e in graph.edges
                  if e.task in shown and e.depends_on in shown],
    }, indent=1)


def get_parallel_batches(context: ToolContext, args: NoInput) -> str:
    """The plan's parallel batches (tasks whose hard dependencies are all in earlier batches), with statuses:
    which batch this task is in and which tasks may run beside it (mind the files they touch)."""
    task = _task(context)
    statuses = task_statuses(task.project)
    batches = project_graph(task.project).batches()
    mine = next((n for n, keys in enumerate(batches, 1) if task.key in keys), None)
    return json.dumps({
        "task": task.key, "batch": mine, "batches": len(batches),
        "alongside": [{"key": key, "status": statuses.get(key, "")} for key in (batches[mine - 1] if mine else [])
                      if key != task.key],
        "all": [{"batch": n, "tasks": [{"key": key, "status": statuses.get(key, "")} for key in keys]}
                for n, keys in enumerate(batches, 1)][:GRAPH_NODES_SHOWN],
    }, indent=1)


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
    Tool("get_dependency_graph", "The plan's dependency graph with every task's status: what your task waits for "
         "and what waits for it.", NoInput, get_dependency_graph),
    Tool("get_parallel_batches", "The plan's parallel batches with statuses: your task's batch and the tasks that "
         "may run beside it.", NoInput, get_parallel_batches),
    Tool("update_task_status", "Report the task done (with evidence) or blocked. Call it once the acceptance "
         "tests pass.", StatusInput, update_task_status),
    Tool("record_test_result", "Record the result of one acceptance test you ran.", TestResultInput,
         record_test_result),
    Tool("add_note", "Leave a note for the people running the project.", NoteInput, add_note),
    Tool("request_help", "Ask a person for help when you are stuck (the session pauses).", HelpInput, request_help),
)
