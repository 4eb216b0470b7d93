"""A worker SIGKILLs itself at each step of finishing a task (the test-only fault hook); the task still ends done,
merged exactly once with its work on main and the right merge commit recorded, within the lease + 30 s, and
the task behind it runs. Real `yokeflow worker` clusters on PostgreSQL, the replay model."""

from __future__ import annotations

import time

import pytest
from git import Repo

from apps.agents.models import AgentCost
from apps.core.faults import MERGE_POINTS
from apps.orchestration import lifecycle
from apps.orchestration.models import Worktree
from tests.orchestration.cluster import kill, start_cluster, wait_for
from tests.orchestration.test_cluster import _replay_env
from tests.orchestration.test_parallel import _main_files

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True, serialized_rollback=True)]
LEASE = 5


@pytest.mark.parametrize("point", [*MERGE_POINTS, "after-tool-result"])
def test_a_worker_killed_at_any_step_leaves_the_task_done_and_merged_exactly_once(point, replay_project, tmp_path):
    log, fired = tmp_path / "cluster.log", tmp_path / "fired"
    project = replay_project(f"crash-{point}", {"E1": [("A", [], "a.txt", "A"), ("B", ["A"], "b.txt", "B")]})
    cluster = start_cluster(log, Q_WORKERS="2", YOKEFLOW_FAULT=point, YOKEFLOW_FAULT_ONCE=str(fired),
                            SESSION_LEASE_SECONDS=str(LEASE), **_replay_env())
    try:
        lifecycle.run_start(project=project)
        wait_for(fired.exists, f"the worker to kill itself at {point}", log, 60)
        killed = time.monotonic()
        task = project.tasks.get(key="A")
        wait_for(lambda: task.refresh_from_db() or task.status == "done", "task A to be done", log, LEASE + 30)
        recovered = time.monotonic() - killed
        wait_for(lambda: project.refresh_from_db() or project.status != "running", "the run to end", log, 60)
    finally:
        kill(cluster)

    assert recovered < LEASE + 30
    assert project.status == "completed", list(project.tasks.values_list("key", "status", "last_error"))
    repo = Repo(project.repo_path)
    merges = [c for c in repo.iter_commits("main", first_parent=True) if c.summary.startswith("Merge")]
    assert sorted(c.summary.split()[1] for c in merges) == ["A", "B"]  # each merged exactly once
    files = _main_files(project)
    assert files["a.txt"].strip() == "A" and files["b.txt"].strip() == "B"
    for key in ("A", "B"):
        tree = Worktree.objects.get(project=project, task__key=key)
        mine = next(c for c in merges if c.summary.split()[1] == key)
        assert tree.status == "merged" and tree.merge_commit == mine.hexsha, (key, tree.merge_commit)
    for session in project.sessions.all():
        seqs = list(session.events.order_by("seq").values_list("seq", flat=True))
        assert seqs == list(range(1, len(seqs) + 1))  # no gap in any transcript
        calls = session.events.filter(type="llm_call").count()
        assert calls == 3 and AgentCost.objects.filter(session=session).count() == calls  # never asked twice
    assert not repo.is_dirty(untracked_files=True)
