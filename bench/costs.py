"""Benchmark: what a run costs all on Sonnet, with prompt caching, and routed by task complexity with caching.

Run from the repo root:  python bench/costs.py

A plan of 20 tasks (simple, medium and complex ones) is run three times through the real coding loop and its
tools, each time in a fresh project: (1) every task on Sonnet without prompt caching, (2) every task on Sonnet
with caching, (3) every task on the tier `recommend_model` chooses, with caching. The model is a scripted
provider defined here. It plays a fixed transcript per task (more turns for harder tasks): it first reads some
of the code earlier tasks wrote, seeded into its working directory, as the role prompt tells agents to; then it
writes, reads, edits, searches and checks files with the real tools, so the prompt grows as in a real session.
It reports the token usage of the request it actually receives (about 4 characters a token), applying
Anthropic's prompt-caching rule to the breakpoints the real provider sets. Dollars come from the product's own
pricing: the `AgentCost` rows the loop records at the seeded `ModelPrice` rates. It is a benchmark, not a test:
it always exits 0.

Goal: routed + cached costs at most half of all-Sonnet uncached, with no task failing.

Caveat: the transcripts are scripted, so whether a task succeeds does not depend on the model here. This bench
measures price; whether the cheaper tiers do the work well is what the model-stats history (`model_stats`)
measures on real runs. The routed tiers are all chosen before the routed run starts, so this bench's scripted
successes do not feed the selector's history.
"""

from __future__ import annotations

import json
import math
import random
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from setup_django import bench_django

WORK = bench_django("yokeflow-bench-costs-")

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db.models import Sum  # noqa: E402
from django.utils import timezone  # noqa: E402

from apps.agents.pricing import TokenUsage  # noqa: E402
from apps.agents.providers import ModelReply, ModelRequest  # noqa: E402
from apps.agents.providers.anthropic import with_cache_breakpoints  # noqa: E402
from apps.core.errors import ProviderError  # noqa: E402

if TYPE_CHECKING:
    from apps.agents.models import AgentSession
    from apps.learning.model_selector import ModelRecommendation
    from apps.projects.models import Project, Task

GOAL_RATIO = 0.5
CHARS_PER_TOKEN = 4
CODEBASE_BEFORE: dict[str, dict[str, str]] = {}  # task key → the files earlier tasks wrote, seeded in its worktree
MIN_CACHEABLE_TOKENS = 1024  # below this a prefix is not cached: the whole prompt is plain input
TIER_NAMES = ("haiku", "sonnet", "opus")

SPEC = """Stockroom: a small inventory service for a chain of hardware shops.

Shop staff keep a catalogue of items (name, SKU, tags, unit price) and the stock of each item per warehouse.
Clerks browse and edit the catalogue in a web page; the tills and the ordering system talk to a JSON API.
Customers reserve stock online: a reservation holds units for 30 minutes and is either confirmed (the units
leave the stock) or released. Two tills must never sell the same last unit, and a retried request must not
reserve twice. Every change of stock or price is written to an audit log that an auditor can verify.
API clients authenticate with signed, short-lived tokens; staff tokens can edit, till tokens can only reserve.
The code is plain Python 3.12 with the standard library and SQLite; tests run with `python -m pytest -q`.
Keep modules small, type-hinted and covered by tests."""


def _t(key: str, title: str, domain: str, complexity: int, depends_on: list[str], description: str,
       *tests: tuple[str, str]) -> dict[str, Any]:
    return {"key": key, "title": title, "domain": domain, "complexity": complexity, "depends_on": depends_on,
            "estimate_minutes": 10 * complexity, "description": description,
            "tests": [{"description": d, "command": c} for d, c in tests]}


SIMPLE = [
    _t("T1", "Write the README", "general", 1, [], "Describe setup and how to run the tests.",
       ("README mentions pytest", "grep -q pytest README.md")),
    _t("T2", "Settings module with defaults", "general", 2, ["T1"], "Read settings from the environment.",
       ("settings import", "python -m pytest -q tests/test_settings.py")),
    _t("T3", "Logging helper", "general", 2, [], "One function that returns a configured logger.",
       ("logger works", "python -m pytest -q tests/test_log.py")),
    _t("T4", "Health check", "general", 2, [], "A function reporting that the service is up.",
       ("health is ok", "python -m pytest -q tests/test_health.py")),
    _t("T5", "Sample item fixtures", "testing", 3, [], "Fixtures with a handful of catalogue items.",
       ("fixtures load", "python -m pytest -q tests/test_fixtures.py")),
    _t("T6", "Smoke test of the health check", "testing", 2, ["T4"], "Call the health check in a test.",
       ("smoke passes", "python -m pytest -q tests/test_smoke.py")),
    _t("T7", "Version command", "general", 3, [], "A command-line entry that prints the version.",
       ("prints version", "python -m stockroom --version")),
    _t("T8", "Test target in the Makefile", "general", 1, [], "`make test` runs the test suite.",
       ("make test runs", "make -n test")),
    _t("T9", "Tests of the settings defaults", "testing", 2, ["T2"], "Check each default value.",
       ("defaults tested", "python -m pytest -q tests/test_settings.py")),
]

MEDIUM = [
    _t("T10", "Item table and repository", "database", 5, ["T2"],
       "Store items (name, SKU unique, tags, unit price in cents) in SQLite with a small repository class: add, "
       "get by SKU, update and list ordered by name. Create the table on first use.",
       ("repository round trip", "python -m pytest -q tests/test_items.py"),
       ("SKU is unique", "python -m pytest -q tests/test_items.py -k unique")),
    _t("T11", "List items endpoint", "api", 5, ["T10"],
       "GET /items answers JSON pages of 50 items ordered by name, with a `next` cursor; an unknown cursor is a "
       "400 with a clear message.",
       ("pages of 50", "python -m pytest -q tests/test_api_list.py"),
       ("bad cursor is 400", "python -m pytest -q tests/test_api_list.py -k cursor")),
    _t("T12", "Create and update items", "api", 6, ["T10"],
       "POST /items and PATCH /items/<sku> validate the body (name required, price a positive integer, at most "
       "ten tags) and answer 201/200 with the item, or 422 listing every invalid field.",
       ("create works", "python -m pytest -q tests/test_api_write.py -k create"),
       ("validation errors listed", "python -m pytest -q tests/test_api_write.py -k invalid")),
    _t("T13", "Item list page", "frontend", 4, ["T11"],
       "An HTML page listing the items with name, SKU and price, and a link to the next page.",
       ("page renders", "python -m pytest -q tests/test_pages.py -k list")),
    _t("T14", "Item edit form", "frontend", 5, ["T12"],
       "A form to edit an item; invalid fields are shown next to the inputs, with the values kept.",
       ("form shows errors", "python -m pytest -q tests/test_pages.py -k form"),
       ("saving redirects", "python -m pytest -q tests/test_pages.py -k save")),
    _t("T15", "Search by name and tag", "api", 5, ["T11"],
       "GET /items?q=…&tag=… filters by a case-insensitive name fragment and by tag, paged like the list.",
       ("search filters", "python -m pytest -q tests/test_api_search.py")),
    _t("T16", "Stock table and queries", "database", 4, ["T10"],
       "Store the units on hand per item; helpers to read the stock of one item and of all items low on stock.",
       ("low stock query", "python -m pytest -q tests/test_stock.py")),
]

COMPLEX = [
    _t("T17", "Concurrent stock reservations", "database", 9, ["T10", "T12", "T16"],
       "Reserve, confirm and release stock so that concurrent tills can never oversell. Design the reservation "
       "as a state machine (held → confirmed | released | expired) stored in its own table. A reservation runs "
       "in one transaction that takes a write lock before it reads the stock (BEGIN IMMEDIATE in SQLite), so "
       "two requests racing for the last unit serialise and exactly one wins. Requests carry an idempotency key: "
       "a retried request answers the first result instead of reserving twice. Expired holds are released by a "
       "sweep that is itself safe to run concurrently. Write down the invariants (stock on hand minus held units "
       "is never negative; every unit is in exactly one state) and test them under parallel load with threads, "
       "including retries with backoff when the database is busy.",
       ("one winner for the last unit", "python -m pytest -q tests/test_reserve.py -k race"),
       ("retries are idempotent", "python -m pytest -q tests/test_reserve.py -k idempotent"),
       ("expiry sweep is safe", "python -m pytest -q tests/test_reserve.py -k sweep"),
       ("invariants hold under load", "python -m pytest -q tests/test_reserve.py -k invariant")),
    _t("T18", "Migration to stock per warehouse", "database", 8, ["T10", "T16", "T17"],
       "Migrate the stock table from one count per item to one row per item and warehouse without losing or "
       "double-counting units. Write the schema migration as forward and backward steps, each in a transaction; "
       "existing stock moves to a default warehouse. Reservations taken while the migration runs must stay "
       "consistent: design the cut-over (lock order, what readers see mid-migration) and document the trade-offs "
       "of doing it online rather than in a maintenance window. Keep the old query helpers working through a "
       "compatibility view until the callers move, and measure the performance of the low-stock query on "
       "100,000 rows before and after.",
       ("forward and back keep totals", "python -m pytest -q tests/test_migrate.py -k roundtrip"),
       ("reservations stay consistent", "python -m pytest -q tests/test_migrate.py -k concurrent"),
       ("low-stock query is fast", "python -m pytest -q tests/test_migrate.py -k performance")),
    _t("T19", "Token authentication for API clients", "security", 9, ["T11", "T12", "T15"],
       "Design the token protocol for API clients: a token is a payload (client id, role, expiry, nonce) signed "
       "with HMAC-SHA256; keys rotate, and a token signed with the previous key stays valid until it expires. "
       "Compare signatures in constant time, refuse expired and future-dated tokens with a small clock-skew "
       "allowance, and keep a cache of used nonces for one-time tokens so a replayed request is refused. Staff "
       "tokens may edit, till tokens may only reserve; every refusal is logged without the token itself. Think "
       "through the failure modes (clock drift, key rotation during a request, concurrent use of one nonce) and "
       "cover each with a test.",
       ("valid token accepted", "python -m pytest -q tests/test_auth.py -k valid"),
       ("replay refused", "python -m pytest -q tests/test_auth.py -k replay"),
       ("rotation keeps old tokens", "python -m pytest -q tests/test_auth.py -k rotation"),
       ("roles enforced", "python -m pytest -q tests/test_auth.py -k role")),
    _t("T20", "Tamper-evident audit log", "security", 10, ["T12", "T17", "T19"],
       "Record every change of stock or price in an append-only audit log whose entries form a hash chain: each "
       "entry stores the SHA-256 of its content and of the previous entry, so deleting or editing one breaks the "
       "chain. Appends from concurrent requests must be serialised inside the same transaction as the change they "
       "describe (no change without its entry, no entry without its change). Provide a verifier that walks the "
       "chain and reports the first broken link, and a checkpoint protocol that signs the head hash daily so "
       "truncation is detected too. Consider the performance of verification on a million entries and the "
       "migration of existing data into the first chain.",
       ("chain verifies", "python -m pytest -q tests/test_audit.py -k verify"),
       ("edits detected", "python -m pytest -q tests/test_audit.py -k tamper"),
       ("concurrent appends ordered", "python -m pytest -q tests/test_audit.py -k concurrent"),
       ("truncation detected", "python -m pytest -q tests/test_audit.py -k truncation"),
       ("atomic with the change", "python -m pytest -q tests/test_audit.py -k atomic")),
]

PLAN = {"epics": [
    {"key": "E1", "title": "Project skeleton", "tasks": SIMPLE},
    {"key": "E2", "title": "Catalogue API and pages", "tasks": MEDIUM},
    {"key": "E3", "title": "Consistency and security", "tasks": COMPLEX},
]}


# ------------------------------------------------------------------------------------------------ transcripts


@dataclass
class Draft:
    """A transcript being written: the random source and the files the scripted agent has written so far."""

    key: str
    complexity: int
    rng: random.Random
    existing: dict[str, str] = field(default_factory=dict)  # the code earlier tasks left in the repository
    files: dict[str, str] = field(default_factory=dict)
    revisions: Counter = field(default_factory=Counter)

    def pick(self) -> str:
        return self.rng.choice(sorted(self.files))


def _tokens(value: object) -> int:
    return math.ceil(len(json.dumps(value, ensure_ascii=False, default=str)) / CHARS_PER_TOKEN)


def _marker(path: str, revision: int) -> str:
    return f"# revision {path} {revision}"


def _source(draft: Draft, path: str) -> str:
    size, lines, step = draft.rng.randint(1024, 4096), [f'"""{path}: part of task {draft.key}."""', ""], 0
    while sum(len(line) + 1 for line in lines) < size:
        step += 1
        lines += [f"def step_{step}(payload: dict) -> dict:", f'    """Stage {step} of {draft.key}."""',
                  f'    value = payload.get("field_{step}", {draft.rng.randint(0, 999)})',
                  f"    return {{'stage': {step}, 'value': value * {draft.rng.randint(2, 9)}}}", ""]
    return "\n".join([*lines, _marker(path, 0)]) + "\n"


def _write(draft: Draft) -> tuple[str, dict]:
    folder = draft.rng.choice(["stockroom", "tests"])
    path = f"{folder}/{draft.key.lower()}_{len(draft.files) + 1}.py"
    draft.files[path] = _source(draft, path)
    return "write_file", {"path": path, "content": draft.files[path]}


def _edit(draft: Draft) -> tuple[str, dict]:
    path = draft.pick()
    old = _marker(path, draft.revisions[path])
    draft.revisions[path] += 1
    value = draft.rng.randint(10, 99)
    check = f"def checked(value: int) -> int:\n    return max(0, value - {value})\n\n"
    new = check + _marker(path, draft.revisions[path])
    draft.files[path] = draft.files[path].replace(old, new)
    return "edit_file", {"path": path, "old_string": old, "new_string": new}


def _read(draft: Draft) -> tuple[str, dict]:
    return "read_file", {"path": draft.pick()}


def _search(draft: Draft) -> tuple[str, dict]:
    pattern = draft.rng.choice([r"def step_\d+", "payload.get", r"revision \S+"])
    return "search_files", {"pattern": pattern, "max_results": draft.rng.choice([20, 40])}


def _command(draft: Draft) -> tuple[str, dict]:
    path = draft.pick()
    command = draft.rng.choice([f"python3 -m py_compile {path} && echo compiled {path}", f"wc -l {path}",
                                f"grep -c 'def ' {path}"])
    return "run_command", {"command": command}


def _note(draft: Draft) -> tuple[str, dict]:
    return "add_note", {"note": f"{draft.key}: {len(draft.files)} files so far; stage names follow step_N."}


ACTIONS = {"read_file": (_read, 30), "edit_file": (_edit, 20), "search_files": (_search, 12),
           "run_command": (_command, 18), "list_files": (lambda d: ("list_files", {"path": "."}), 10),
           "add_note": (_note, 5)}


def reads_first(draft: Draft) -> list[str]:
    """The earlier code the agent reads before changing anything, as its role prompt tells it to: more for a more
    complex task (which builds on more)."""
    count = min(len(draft.existing), 2 + draft.complexity // 2)
    return draft.rng.sample(sorted(draft.existing), count)


def _next_call(draft: Draft, step: int, orientation: list[str]) -> tuple[str, dict]:
    if step == 0:
        return "get_task", {}
    if step == 1:
        return "list_files", {"path": "."}
    if step - 2 < len(orientation):
        return "read_file", {"path": orientation[step - 2]}
    if not draft.files or draft.rng.random() < 0.25:
        return _write(draft)
    name = draft.rng.choices(list(ACTIONS), weights=[weight for _, weight in ACTIONS.values()])[0]
    return ACTIONS[name][0](draft)


def _turn(draft: Draft, content: list[dict]) -> dict:
    thinking = draft.rng.randint(30, 60) * draft.complexity  # reasoning billed as output, not sent back
    return {"content": content, "output_tokens": _tokens(content) + thinking}


def _tool_turn(draft: Draft, name: str, arguments: dict) -> dict:
    content = [{"type": "tool_use", "name": name, "input": arguments}]
    if draft.rng.random() < 0.5:
        content.insert(0, {"type": "text", "text": f"Next I use {name} ({len(draft.files)} files written)."})
    return _turn(draft, content)


def turns_for(complexity: int) -> int:
    return 3 + math.ceil(1.6 * complexity)  # 5 turns at complexity 1, 11 at 5, 18 at 9


def transcript(key: str, complexity: int, codebase: dict[str, str]) -> list[dict]:
    """The task's turns; `codebase` (what earlier tasks wrote) is read first and then grows by this task's files."""
    draft = Draft(key, complexity, random.Random(zlib.crc32(key.encode())), existing=dict(codebase))
    orientation = reads_first(draft)
    steps = turns_for(complexity) - 2 + len(orientation)
    turns = [_tool_turn(draft, *_next_call(draft, step, orientation)) for step in range(steps)]
    codebase.update(draft.files)
    evidence = f"{key}: wrote {', '.join(sorted(draft.files))}; the checks pass."
    turns.append(_tool_turn(draft, "update_task_status", {"status": "done", "evidence": evidence}))
    return [*turns, _turn(draft, [{"type": "text", "text": "Done."}])]


# ------------------------------------------------------------------------------------------------ the provider


def _has_breakpoint(message: dict) -> bool:
    content = message["content"]
    return isinstance(content, list) and any("cache_control" in block for block in content)


def prompt_split(request: ModelRequest) -> tuple[int, int]:
    """Tokens up to and including the request's last cache breakpoint (as the real provider sets them), and after."""
    _, marked = with_cache_breakpoints(request)
    last = max((i for i, message in enumerate(marked) if _has_breakpoint(message)), default=-1)
    head = _tokens(request.tools) + _tokens(request.system) + _tokens(request.messages[: last + 1])
    return head, _tokens(request.messages[last + 1:])


class ScriptedProvider:
    """Plays one task's transcript; usage is measured on each real request, cached or not."""

    name = "bench"
    simulated = False  # priced like real calls
    account = "bench"

    def __init__(self, turns: list[dict], *, cached: bool) -> None:
        self.turns, self.cached, self.cached_prefix = turns, cached, 0

    def usage(self, request: ModelRequest, output_tokens: int) -> TokenUsage:
        head, tail = prompt_split(request)
        if not self.cached or head < MIN_CACHEABLE_TOKENS:
            return TokenUsage(input_tokens=head + tail, output_tokens=output_tokens)
        read = min(self.cached_prefix, head)
        self.cached_prefix = head
        return TokenUsage(input_tokens=tail, output_tokens=output_tokens, cache_read_tokens=read,
                          cache_write_tokens=head - read)

    def complete(self, request: ModelRequest) -> ModelReply:
        index = sum(1 for message in request.messages if message["role"] == "assistant")
        if index >= len(self.turns):
            raise ProviderError(f"script has {len(self.turns)} turns", code="script_exhausted", recoverable=False)
        turn = self.turns[index]
        content = [dict(block, id=f"toolu_bench_{index}_{n}") if block["type"] == "tool_use" else dict(block)
                   for n, block in enumerate(turn["content"])]
        stop = "tool_use" if any(block["type"] == "tool_use" for block in content) else "end_turn"
        return ModelReply(content=content, stop_reason=stop, usage=self.usage(request, turn["output_tokens"]),
                          model=request.model)


# ------------------------------------------------------------------------------------------------ the runs


@dataclass(frozen=True)
class Mode:
    label: str
    slug: str
    cached: bool
    routed: bool


MODES = (Mode("all Sonnet, no caching", "sonnet-plain", False, False),
         Mode("all Sonnet, cached", "sonnet-cached", True, False),
         Mode("routed, cached", "routed-cached", True, True))


@dataclass
class Result:
    project: Project
    failed: int = 0
    tiers: Counter = field(default_factory=Counter)

    @property
    def cost(self) -> Decimal:
        return self.project.costs.aggregate(total=Sum("cost_usd"))["total"] or Decimal(0)


def _runnable(task: Task) -> Task | None:
    from apps.projects.services import task_transition, tasks_refresh_ready

    tasks_refresh_ready(project=task.project)
    task.refresh_from_db()
    return task_transition(task=task, to="running") if task.status == "ready" else None


def _session(task: Task, mode: Mode, choice: ModelRecommendation | None) -> AgentSession:
    from apps.agents.services import session_create

    workdir = WORK / "sessions" / mode.slug / task.key
    for name, text in CODEBASE_BEFORE[task.key].items():  # the repository as earlier tasks left it
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        (workdir / name).write_text(text, encoding="utf-8")
    workdir.mkdir(parents=True, exist_ok=True)
    chosen = {"model_tier": choice.tier, "model_reason": choice.reason, "task_type": choice.task_type} if choice \
        else {}
    return session_create(project=task.project, kind="coding", task=task, provider="replay", workdir=str(workdir),
                          model=choice.model if choice else settings.MODEL_TIERS["sonnet"], **chosen)


def run_task(task: Task, mode: Mode, choice: ModelRecommendation | None, script: list[dict]) -> bool:
    from apps.agents.coding import coding_session_run
    from apps.agents.loop_types import LoopConfig
    from apps.interventions.detectors import guards_for
    from apps.projects.services import task_transition

    running = _runnable(task)
    if running is None:  # a task it depends on failed
        return False
    provider = ScriptedProvider(script, cached=mode.cached)
    guards, hooks = guards_for(account=provider.account, project_id=task.project_id)
    outcome = coding_session_run(session=_session(running, mode, choice), provider=provider, guards=guards,
                                 hooks=hooks, config=LoopConfig(max_turns=len(script) + 5))
    if outcome.completed:  # what the orchestrator does once the acceptance tests pass and the branch is merged
        task_transition(task=task_transition(task=running, to="merging"), to="done")
    return outcome.completed


def run_mode(owner: Any, mode: Mode, scripts: dict[str, list[dict]]) -> Result:
    from apps.learning.model_selector import recommend_model
    from apps.orchestration.repository import repo_ensure
    from apps.projects.plan import plan_import
    from apps.projects.services import project_create

    project = project_create(owner=owner, name=f"bench {mode.slug}", spec=SPEC)
    plan_import(project=project, data=PLAN, replace=False, apply_suggestions=False)
    repo_ensure(project)
    tasks = list(project.tasks.select_related("project", "epic").order_by("position"))
    choices = {task.key: recommend_model(task=task) if mode.routed else None for task in tasks}
    result = Result(project)
    for task in tasks:
        result.failed += not run_task(task, mode, choices[task.key], scripts[task.key])
        if choices[task.key]:
            result.tiers[choices[task.key].tier] += 1
    return result


# ------------------------------------------------------------------------------------------------ the report


def tier_costs(project: Project) -> dict[str, Decimal]:
    rows = project.costs.values("session__model_tier").annotate(total=Sum("cost_usd"))
    return {row["session__model_tier"]: row["total"] for row in rows}


def where_it_goes(result: Result) -> str:
    """The share of output tokens and of the complex tasks in one mode's dollars."""
    from apps.agents.pricing import cost_of, price_for

    output = result.project.costs.aggregate(total=Sum("output_tokens"))["total"] or 0
    price = price_for(settings.MODEL_TIERS["sonnet"], timezone.localdate())
    complex_cost = result.project.costs.filter(task__complexity__gte=8).aggregate(total=Sum("cost_usd"))["total"]
    share = cost_of(price, TokenUsage(output_tokens=output)) / result.cost
    return (f"all Sonnet, cached: output tokens are {share:.0%} of the dollars, the {len(COMPLEX)} complex tasks "
            f"{(complex_cost or 0) / result.cost:.0%}")


def report(results: dict[Mode, Result], scripts: dict[str, list[dict]], seconds: float) -> None:
    routed = results[MODES[2]]
    chosen = ", ".join(f"{routed.tiers[tier]} {tier}" for tier in TIER_NAMES)
    print(f"tasks: {len(scripts)}; scripted turns per mode: {sum(map(len, scripts.values()))}; "
          f"routed tiers: {chosen}; {seconds:.1f} s")
    print(f"{'mode':<26} {'cost':<9} {'ratio':<6} failed")
    base = results[MODES[0]].cost
    for mode, result in results.items():
        print(f"{mode.label:<26} {'$' + format(result.cost, '.4f'):<9} {result.cost / base:<6.2f} {result.failed}")
    spent = tier_costs(routed.project)
    print("routed by tier: " + "; ".join(f"{tier} {routed.tiers[tier]} tasks ${spent.get(tier, 0):.4f}"
                                         for tier in TIER_NAMES))
    print(where_it_goes(results[MODES[1]]))
    ratio = routed.cost / base
    failed = sum(result.failed for result in results.values())
    verdict = "met" if ratio <= GOAL_RATIO and not failed else "NOT met"
    print(f"goal: routed+cached <= {GOAL_RATIO:.2f} x all-Sonnet uncached, no task failing: {verdict} "
          f"({ratio:.2f}, {failed} failed)")


def main() -> None:
    call_command("migrate", verbosity=0)
    owner = get_user_model().objects.create_user("bench")
    codebase: dict[str, str] = {}
    scripts = {}
    for task in [*SIMPLE, *MEDIUM, *COMPLEX]:  # plan order: a task's dependencies come before it
        CODEBASE_BEFORE[task["key"]] = dict(codebase)
        scripts[task["key"]] = transcript(task["key"], task["complexity"], codebase)
    started = time.perf_counter()
    results = {mode: run_mode(owner, mode, scripts) for mode in MODES}
    report(results, scripts, time.perf_counter() - started)


if __name__ == "__main__":
    main()
