"""`yokeflow prune --older-than AGE`: old and finished history goes, open sessions and cost rows stay."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from django_q.models import Failure, Success
from django_q.models import Task as Job

from apps.agents.models import AgentCost, AgentSession, Checkpoint, SessionEvent
from apps.core.models import AuditEvent
from apps.orchestration import retention
from apps.orchestration.models import Worktree
from apps.orchestration.repository import repo_ensure
from apps.orchestration.worktrees import gitops
from apps.projects.models import ProjectEvent
from tests.projects.test_cli import refused, yokeflow

pytestmark = pytest.mark.django_db

OLD = timezone.now() - timedelta(days=40)
RECENT = timezone.now() - timedelta(days=1)


def session(project, status: str, *, ended=None, events: int = 3) -> AgentSession:
    """A session with `events` transcript blocks and a checkpoint, all created 40 days ago."""
    row = AgentSession.objects.create(project=project, task=project.tasks.first(), status=status, model="m",
                                      ended_at=ended)
    SessionEvent.objects.bulk_create(SessionEvent(session=row, seq=n, type="text") for n in range(1, events + 1))
    Checkpoint.objects.create(session=row, turn=1)
    AgentCost.objects.create(session=row, project=project, model="m", turn=1)
    AgentSession.objects.filter(pk=row.pk).update(created=OLD)
    SessionEvent.objects.filter(session=row).update(created=OLD)
    Checkpoint.objects.filter(session=row).update(created=OLD)
    AgentCost.objects.filter(session=row).update(created=OLD)
    return row


def job(stopped, *, success: bool) -> str:
    key = uuid.uuid4().hex
    Job.objects.create(id=key, name=key, func="math.floor", started=stopped, stopped=stopped, success=success)
    return key


def worktree(project, branch: str, status: str, *, ended=None, path: Path | None = None) -> Worktree:
    row = Worktree.objects.create(project=project, epic=project.epics.first(), branch=branch, status=status,
                                  path=str(path or gitops.worktree_path(Path(project.repo_path), branch)),
                                  merged_at=ended if status == Worktree.Status.MERGED else None,
                                  removed_at=ended if status == Worktree.Status.REMOVED else None)
    Worktree.objects.filter(pk=row.pk).update(created=OLD)
    return row


@pytest.fixture
def history(planned_project):
    """Old and recent rows of every kind prune looks at."""
    project = planned_project
    repo = Path(repo_ensure(project).working_dir)
    ProjectEvent.objects.all().delete()  # only the rows made here
    for _ in range(3):
        ProjectEvent.objects.create(project=project, kind=ProjectEvent.Kind.TASK_STATUS)
    ProjectEvent.objects.filter(pk__in=ProjectEvent.objects.order_by("pk").values("pk")[:2]).update(created=OLD)
    stray = gitops.worktree_path(repo, "yf-stray")  # merged long ago, directory left behind, unknown to git
    (stray / "src").mkdir(parents=True)
    registered = gitops.worktree_create(repo, "yf-registered", base=project.default_branch)
    reused = gitops.worktree_path(repo, "yf-reused")  # an old record's path that a live worktree uses again
    reused.mkdir(parents=True)
    for actor in ("old", "recent"):
        AuditEvent.objects.create(actor=actor, action=AuditEvent.Action.TOKEN_USED)
    AuditEvent.objects.filter(actor="old").update(created=OLD)
    return {
        "project": project,
        "finished_old": session(project, "completed", ended=OLD),
        "failed_old": session(project, "failed", ended=OLD + timedelta(hours=1)),
        "finished_recently": session(project, "cancelled", ended=RECENT),
        "paused": session(project, "paused"),
        "running": session(project, "running"),
        "jobs": {"old_ok": job(OLD, success=True), "old_failed": job(OLD, success=False),
                 "recent": job(RECENT, success=True)},
        "stray": stray, "registered": registered, "reused": reused,
        "worktrees": {"merged_old": worktree(project, "yf-stray", "merged", ended=OLD),
                      "merged_before": worktree(project, "yf-stray", "merged", ended=OLD - timedelta(days=1)),
                      "reused_old": worktree(project, "yf-reused", "merged", ended=OLD),
                      "reused_live": worktree(project, "yf-reused", "active"),
                      "removed_old": worktree(project, "yf-registered", "removed", ended=OLD),
                      "removed_recently": worktree(project, "yf-late", "removed", ended=RECENT),
                      "active": worktree(project, "yf-live", "active")},
    }


def snapshot() -> dict[str, int]:
    return {"project events": ProjectEvent.objects.count(), "session events": SessionEvent.objects.count(),
            "checkpoints": Checkpoint.objects.count(), "jobs": Job.objects.count(),
            "worktrees": Worktree.objects.count(), "audit events": AuditEvent.objects.count(),
            "costs": AgentCost.objects.count()}


def test_prune_deletes_only_what_is_old_and_finished(history, monkeypatch):
    monkeypatch.setattr(retention, "BATCH_SIZE", 2)  # several batches per kind

    counts = retention.prune(older_than=timedelta(days=30), dry_run=False)

    assert counts == {"project events": 2, "session events": 6, "checkpoints": 2, "job successes": 1,
                      "job failures": 1, "worktree directories": 1, "worktrees": 4, "audit events": 1}
    kept_sessions = {history[name].pk for name in ("finished_recently", "paused", "running")}
    assert set(SessionEvent.objects.values_list("session_id", flat=True)) == kept_sessions
    assert set(Checkpoint.objects.values_list("session_id", flat=True)) == kept_sessions
    assert AgentSession.objects.count() == 5 and AgentCost.objects.count() == 5  # money history stays
    tokens_used = AuditEvent.objects.filter(action=AuditEvent.Action.TOKEN_USED)  # the fixture's project is audited too
    assert ProjectEvent.objects.count() == 1 and list(tokens_used.values_list("actor", flat=True)) == ["recent"]
    assert list(Job.objects.values_list("id", flat=True)) == [history["jobs"]["recent"]]
    assert not Success.objects.filter(id=history["jobs"]["old_ok"]).exists()
    assert not Failure.objects.filter(id=history["jobs"]["old_failed"]).exists()
    assert set(Worktree.objects.values_list("branch", flat=True)) == {"yf-late", "yf-live", "yf-reused"}
    assert not history["stray"].exists()  # the left-behind directory went with its records
    assert history["registered"].is_dir()  # git still lists it: never touched
    assert history["reused"].is_dir()  # a live worktree's path: never touched


def test_dry_run_counts_and_deletes_nothing(history):
    before = snapshot()

    counts = retention.prune(older_than=timedelta(days=30), dry_run=True)

    assert snapshot() == before and history["stray"].is_dir()
    assert counts == retention.prune(older_than=timedelta(days=30), dry_run=False)


def test_a_longer_age_keeps_everything(history):
    before = snapshot()

    counts = retention.prune(older_than=timedelta(weeks=8), dry_run=False)

    assert set(counts.values()) == {0} and snapshot() == before


def test_the_command_prints_a_count_per_kind(history):
    shown = yokeflow("prune", "--older-than", "30d", "--dry-run")
    assert "session events: 6 would be deleted" in shown and "worktree directories: 1 would be deleted" in shown
    assert "cost rows (AgentCost) are kept" in shown and SessionEvent.objects.count() == 15

    shown = yokeflow("prune", "--older-than", "720h")
    assert "project events: 2 deleted" in shown and SessionEvent.objects.count() == 9


@pytest.mark.parametrize("age", ["30", "30x", "0d", "-3d", "d", "1.5d"])
def test_a_bad_age_is_one_line_and_a_non_zero_exit(age):
    error = refused("prune", "--older-than", age)
    assert "--older-than" in str(error) and error.returncode != 0


@pytest.mark.parametrize(("text", "age"), [("12h", timedelta(hours=12)), ("30d", timedelta(days=30)),
                                           ("2w", timedelta(weeks=2))])
def test_ages(text, age):
    assert retention.parse_age(text) == age
