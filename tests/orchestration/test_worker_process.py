"""`yokeflow worker`: its processes die with it, and `doctor` reports any worker process that outlived its cluster."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from apps.core.health import run_checks
from apps.orchestration.worker import CHILD_NAME, orphans
from tests.orchestration.cluster import kill, start_cluster, wait_for


def _tree(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_killing_the_workers_main_process_takes_all_its_processes_with_it(tmp_path):
    log = tmp_path / "worker.log"
    cluster = start_cluster(log, Q_WORKERS="2")
    try:
        wait_for(lambda: len(_tree(cluster.pid)) >= 5, "sentinel, pusher, monitor and two workers", log, 60)
        children = _tree(cluster.pid)
        assert {child.name() for child in children} == {CHILD_NAME.decode()}
        os.kill(cluster.pid, signal.SIGKILL)  # only the main process, as the OOM killer would
        cluster.wait(timeout=10)
        gone, alive = psutil.wait_procs(children, timeout=10)
    finally:
        kill(cluster)
    assert alive == [] and len(gone) == len(children)
    assert orphans() == []


ORPHAN = textwrap.dedent("""
    import ctypes, os, sys, time
    if os.fork():
        sys.exit(0)  # the parent goes at once: its child is re-parented, as a worker whose cluster died
    ctypes.CDLL(None).prctl(15, b"yf-worker-child")
    open(sys.argv[1], "w").write(str(os.getpid()))
    os.closerange(0, 3)
    time.sleep(60)
""")


@pytest.mark.django_db
def test_doctor_reports_a_worker_process_whose_cluster_is_gone(tmp_path):
    pid_file = tmp_path / "pid"
    subprocess.run([sys.executable, "-c", ORPHAN, str(pid_file)], timeout=20, check=True)
    deadline = time.monotonic() + 10
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the orphan did not start"
        time.sleep(0.05)
    pid = int(pid_file.read_text())
    try:
        deadline = time.monotonic() + 10
        while pid not in orphans() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pid in orphans()
        check = next(check for check in run_checks() if check.name == "worker_orphans")
        assert not check.ok and str(pid) in check.message and not check.required
    finally:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid in orphans() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pid not in orphans()
