"""The plan: projects, their members, epics, tasks, dependencies and acceptance tests."""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import (
    MaxValueValidator,
    MinValueValidator,
    ProhibitNullCharactersValidator,
    RegexValidator,
)
from django.db import models
from django.db.models import F, Q

from apps.core.models import BaseModel, in_choices
from apps.projects.validators import validate_env_files, validate_git_ref

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
# Slugs become URL segments and directory names: refuse the ones that collide with routes or tools.
RESERVED_SLUGS = frozenset(
    {"admin", "api", "static", "media", "login", "logout", "new", "health", "ready", "metrics", "projects",
     "settings", "docs", "tasks", "epics", "worktrees", "repo", "var"}
)
KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
KEY_RE = re.compile(KEY_PATTERN)
SLUG_RE = re.compile(SLUG_PATTERN)

slug_validator = RegexValidator(SLUG_PATTERN, "use lowercase letters, digits and inner hyphens (max 63)")


MODEL_TIER_NAMES = ("haiku", "sonnet", "opus")
OVERRIDE_GROUPS = ("task_types", "epic_priorities")


def validate_model_overrides(value: object) -> None:
    """`{"task_types": {"database": "opus"}, "epic_priorities": {"0": "opus"}}`: a tier per task type (domain)
    and per epic priority, applied before the complexity-based choice (task types first)."""
    if not isinstance(value, dict):
        raise ValidationError("must be an object with task_types and/or epic_priorities", code="invalid")
    for group, mapping in value.items():
        if group not in OVERRIDE_GROUPS:
            raise ValidationError(f"unknown key {group!r}; use {' or '.join(OVERRIDE_GROUPS)}", code="invalid")
        if not isinstance(mapping, dict):
            raise ValidationError(f"{group} must map names to tiers", code="invalid")
        for key, tier in mapping.items():
            if group == "task_types" and key not in Domain.values:
                raise ValidationError(f"task type {key!r} is not one of {', '.join(Domain.values)}", code="invalid")
            if group == "epic_priorities" and not re.fullmatch(r"-?\d+", str(key)):
                raise ValidationError(f"epic priority {key!r} is not an integer", code="invalid")
            if tier not in MODEL_TIER_NAMES:
                raise ValidationError(f"{group}.{key}: tier {tier!r} is not one of {', '.join(MODEL_TIER_NAMES)}",
                                      code="invalid")


def validate_slug_not_reserved(value: str) -> None:
    if value in RESERVED_SLUGS:
        raise ValidationError(f"{value!r} is reserved", code="reserved")
no_nul = ProhibitNullCharactersValidator()
key_validator = RegexValidator(KEY_PATTERN, "use letters, digits, '_', '.', '-' (max 64)")



class Domain(models.TextChoices):
    DATABASE = "database"
    API = "api"
    FRONTEND = "frontend"
    TESTING = "testing"
    SECURITY = "security"
    DEPLOYMENT = "deployment"
    GENERAL = "general"


class ProjectStatus(models.TextChoices):
    DRAFT = "draft"
    PLANNED = "planned"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    ARCHIVED = "archived"


class RunStrategy(models.TextChoices):
    READY = "ready", "ready-set (start a task once its hard dependencies are done)"
    BATCH = "batch", "batches (run Kahn batches one after another)"


class MergeStrategyChoice(models.TextChoices):
    MERGE = "merge", "merge commit (--no-ff)"
    SQUASH = "squash"


class NetworkMode(models.TextChoices):
    NONE = "none", "none"
    REGISTRIES = "registries", "package registries only"
    OPEN = "open", "open (staff only)"


# Settings that decide what runs in the jail or what it can reach: only the owner (or staff) may change them.
OWNER_ONLY_FIELDS = frozenset({"setup_command", "dev_service", "env_files", "network"})


def default_env_files() -> list[str]:
    return [".env", ".env.*"]


class Project(BaseModel):
    Status = ProjectStatus
    Strategy = RunStrategy
    MergeStrategy = MergeStrategyChoice
    slug = models.SlugField(max_length=63, unique=True, validators=[slug_validator, validate_slug_not_reserved])
    name = models.CharField(max_length=255, validators=[no_nul])
    spec = models.TextField(blank=True, validators=[no_nul])
    repo_path = models.CharField(max_length=1024, blank=True, validators=[no_nul],
                                 help_text="Defaults to PROJECTS_ROOT/<slug>/repo.")
    default_branch = models.CharField(max_length=100, default="main", validators=[no_nul, validate_git_ref])
    status = models.CharField(max_length=16, choices=ProjectStatus.choices, default=ProjectStatus.DRAFT)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_projects")
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="ProjectMembership", related_name="projects", blank=True
    )
    parallel_enabled = models.BooleanField(default=True)
    max_concurrency = models.PositiveSmallIntegerField(
        default=3, validators=[MinValueValidator(1), MaxValueValidator(64)]
    )
    strategy = models.CharField(max_length=8, choices=Strategy.choices, default=Strategy.READY)
    merge_strategy = models.CharField(max_length=8, choices=MergeStrategy.choices, default=MergeStrategy.MERGE)
    budget_usd = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    session_time_limit = models.PositiveIntegerField(
        default=30, validators=[MaxValueValidator(24 * 60)],
        help_text="Minutes one run of an agent session may take before it pauses (timeout); 0: no limit.")
    model_overrides = models.JSONField(default=dict, blank=True, validators=[validate_model_overrides],
                                       help_text='e.g. {"task_types": {"security": "opus"}, '
                                                 '"epic_priorities": {"0": "opus"}}')
    # Worktree bootstrap: what every fresh worktree gets before its agent starts.
    env_files = models.JSONField(
        default=default_env_files, blank=True, validators=[validate_env_files],
        help_text="Glob patterns of untracked files (e.g. .env) copied from the repository into each worktree.",
    )
    setup_command = models.TextField(
        blank=True, validators=[no_nul], help_text="Run in each new worktree before its agent starts, e.g. `npm ci`."
    )
    dev_service = models.TextField(
        blank=True, validators=[no_nul],
        help_text="The project's development service (a database, a cache…), started in the background in the "
                  "worktree, e.g. `redis-server --port $PORT`; restarted automatically when an agent's command "
                  "cannot connect to it.",
    )
    # The jail's network (apps/agents/egress.py): none, package registries only through YokeFlow's proxy, or any
    # public host name (staff only). Loopback, link-local and private addresses are never reachable.
    network = models.CharField(max_length=12, choices=NetworkMode.choices, default=NetworkMode.NONE)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=in_choices("status", ProjectStatus), name="project_status_valid"),
            models.CheckConstraint(condition=in_choices("strategy", RunStrategy), name="project_strategy_valid"),
            models.CheckConstraint(
                condition=in_choices("merge_strategy", MergeStrategyChoice), name="project_merge_strategy_valid"
            ),
            models.CheckConstraint(
                condition=Q(max_concurrency__gte=1, max_concurrency__lte=64), name="project_concurrency_range"
            ),
            models.CheckConstraint(
                condition=Q(budget_usd__isnull=True) | Q(budget_usd__gte=0), name="project_budget_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class MembershipRole(models.TextChoices):
    VIEWER = "viewer", "viewer (read only)"
    OPERATOR = "operator", "operator (can run, pause, resume, import)"


class ProjectMembership(BaseModel):
    Role = MembershipRole
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="membership_unique"),
            models.CheckConstraint(condition=in_choices("role", MembershipRole), name="membership_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.role} · {self.project}"


class EpicStatus(models.TextChoices):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    CANCELLED = "cancelled"


class Epic(BaseModel):
    Status = EpicStatus
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="epics")
    key = models.CharField(max_length=64, validators=[key_validator])
    title = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    priority = models.IntegerField(default=0, help_text="Lower runs first.")
    position = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # Kept for display; the scheduler reads the task-level dependencies these expand into.
    depends_on = models.ManyToManyField("self", symmetrical=False, related_name="dependents", blank=True)

    class Meta:
        ordering = ["project", "position"]
        constraints = [
            models.UniqueConstraint(fields=["project", "key"], name="epic_key_unique_in_project"),
            models.CheckConstraint(condition=in_choices("status", EpicStatus), name="epic_status_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.key} {self.title}"


class TaskStatus(models.TextChoices):
    PENDING = "pending"
    READY = "ready"
    RUNNING = "running"
    MERGING = "merging"
    DONE = "done"
    FAILED = "failed"
    BLOCKED = "blocked"
    PAUSED = "paused"
    CANCELLED = "cancelled"


class Task(BaseModel):
    Status = TaskStatus
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tasks")
    epic = models.ForeignKey(Epic, on_delete=models.CASCADE, related_name="tasks")
    key = models.CharField(max_length=64, validators=[key_validator])
    title = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    priority = models.IntegerField(default=0, help_text="Lower runs first inside a batch.")
    position = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    domain = models.CharField(max_length=16, choices=Domain.choices, default=Domain.GENERAL)
    complexity = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(10)]
    )
    estimate_minutes = models.PositiveIntegerField(default=15)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Failed or lost attempts so far.")

    class Meta:
        ordering = ["project", "position"]  # position is plan-wide, in epic order: no join needed
        constraints = [
            models.UniqueConstraint(fields=["project", "key"], name="task_key_unique_in_project"),
            models.CheckConstraint(condition=in_choices("status", TaskStatus), name="task_status_valid"),
            models.CheckConstraint(condition=in_choices("domain", Domain), name="task_domain_valid"),
            models.CheckConstraint(
                condition=Q(complexity__isnull=True) | Q(complexity__gte=1, complexity__lte=10),
                name="task_complexity_range",
            ),
            models.CheckConstraint(
                condition=~Q(status="done") | Q(completed_at__isnull=False), name="task_done_has_completed_at"
            ),
        ]
        indexes = [
            models.Index(fields=["project", "status"], name="task_project_status"),
            models.Index(fields=["epic", "position"], name="task_epic_position"),
        ]

    def __str__(self) -> str:
        return f"{self.key} {self.title}"


class DependencyKind(models.TextChoices):
    HARD = "hard", "hard (must be done first)"
    SOFT = "soft", "soft (prefer after; does not block)"


class DependencyOrigin(models.TextChoices):
    PLAN = "plan", "declared on the task"
    EPIC = "epic", "expanded from an epic dependency"
    MANUAL = "manual", "added later"
    INFERRED = "inferred", "suggested by the layer heuristic and accepted"


class TaskDependency(BaseModel):
    Kind = DependencyKind
    Origin = DependencyOrigin
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="dependencies")
    depends_on = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="dependents")
    kind = models.CharField(max_length=4, choices=Kind.choices, default=Kind.HARD)
    origin = models.CharField(max_length=8, choices=Origin.choices, default=Origin.PLAN)

    class Meta:
        verbose_name_plural = "task dependencies"
        constraints = [
            models.UniqueConstraint(fields=["task", "depends_on"], name="dependency_unique"),
            models.CheckConstraint(condition=~Q(task=F("depends_on")), name="dependency_not_self"),
            models.CheckConstraint(condition=in_choices("kind", DependencyKind), name="dependency_kind_valid"),
        ]
        indexes = [models.Index(fields=["depends_on"], name="dependency_depends_on")]

    def __str__(self) -> str:
        return f"{self.task_id} → {self.depends_on_id} ({self.kind})"


class TestResult(models.TextChoices):
    PENDING = "pending"
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"


class AcceptanceTest(BaseModel):
    Result = TestResult
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="tests")
    position = models.PositiveIntegerField(default=0)
    description = models.TextField()
    command = models.TextField(blank=True, help_text="Shell command run in the worktree, then on main.")
    result = models.CharField(max_length=8, choices=Result.choices, default=Result.PENDING)
    evidence = models.TextField(blank=True, help_text="Output of the last run.")
    last_run_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["task", "position"]
        constraints = [models.CheckConstraint(condition=in_choices("result", TestResult), name="test_result_valid")]

    def __str__(self) -> str:
        return self.description[:80]


class EventKind(models.TextChoices):
    RUN_STATUS = "run_status", "run status changed"
    BATCH_START = "batch_start", "batch started"
    BATCH_COMPLETE = "batch_complete", "batch completed"
    TASK_START = "task_start", "task started"
    TASK_COMPLETE = "task_complete", "task finished (done, failed or cancelled)"
    TASK_STATUS = "task_status", "task status changed"
    AGENT_STATUS = "agent_status", "agent session status changed"
    COST_UPDATE = "cost_update", "LLM call recorded"


class ProjectEvent(models.Model):
    """One thing that happened in a project's run, in order: what the live pages and the event feed read.

    `id` is the feed's sequence number (`?after=SEQ`). Rows are written in the same transaction as the change
    they describe, so a reader never sees an event for a change that rolled back.
    """

    Kind = EventKind
    id = models.BigAutoField(primary_key=True)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    task = models.ForeignKey(Task, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    session_id = models.BigIntegerField(null=True, blank=True, help_text="The agent session, when there is one.")
    payload = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.CheckConstraint(condition=in_choices("kind", EventKind), name="event_kind_valid")]
        indexes = [models.Index(fields=["project", "id"], name="event_project_seq")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind}"
