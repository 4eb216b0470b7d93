"""`yokeflow worker`: a django-q2 cluster that never outlives itself, and a reaper that runs every few seconds.

- Every process the cluster forks (sentinel, pusher, monitor, workers) asks the kernel for SIGKILL when its parent
  dies (`PR_SET_PDEATHSIG`), so killing the worker's main process — a deploy, the OOM killer, `kill -9` — takes
  the whole tree with it instead of leaving workers that still hold jobs. They are named `yf-worker-child`, which
  is how `doctor` finds any that were orphaned anyway (e.g. started by a plain `qcluster`).
- The main process runs the reaper every REAPER_SECONDS (the django-q2 schedule ticks once a minute at best): a
  dead worker's session, a stranded merge or a lost job is taken up again within the lease.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import multiprocessing.util
import os
import signal
import time

from django.conf import settings
from django.db import DatabaseError, connections

log = logging.getLogger("yokeflow.worker")
CHILD_NAME = b"yf-worker-child"
_PR_SET_PDEATHSIG, _PR_SET_NAME = 1, 15


class _AfterFork:
    """multiprocessing keeps after-fork callbacks in a weak registry: this object keeps ours alive."""


_after_fork = _AfterFork()


def _die_with_parent(_: object) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    libc.prctl(_PR_SET_NAME, CHILD_NAME)
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:
        os._exit(1)  # the parent died before the signal was armed: nobody would kill this process later


def worker_run(*, reap_every: float | None = None, max_seconds: float | None = None) -> None:
    """Start the cluster and reap until it stops (SIGTERM/SIGINT stop it cleanly; SIGKILL takes it all down)."""
    from django_q.cluster import Cluster

    from apps.orchestration.reaper import reap

    multiprocessing.util.register_after_fork(_after_fork, _die_with_parent)
    connections.close_all()  # never hand an open database connection to the forked processes
    reap_every = settings.REAPER_SECONDS if reap_every is None else reap_every
    cluster = Cluster()
    cluster.start()
    started = last = time.monotonic()
    while cluster.sentinel.is_alive():
        if max_seconds is not None and time.monotonic() - started > max_seconds:
            cluster.stop()
            break
        if time.monotonic() - last >= reap_every:
            _reap_once(reap)
            last = time.monotonic()
        time.sleep(0.2)
    connections.close_all()


def _reap_once(reap) -> None:
    try:
        report = reap()
    except DatabaseError as exc:  # the database is away: the next round tries again
        log.warning("reaper: %s", str(exc).strip().splitlines()[0][:200])
        connections.close_all()
        return
    busy = {name: ids for name, ids in report.items() if ids}
    if busy:
        log.info("reaper: %s", busy)


def orphans() -> list[int]:
    """Worker processes whose main process is gone (they were re-parented), as `doctor` reports them."""
    import psutil

    found = []
    for process in psutil.process_iter(["pid", "name", "ppid"]):
        if process.info["name"] != CHILD_NAME.decode():
            continue
        try:
            parent = psutil.Process(process.info["ppid"])
            alive = parent.name() == CHILD_NAME.decode() or "worker" in " ".join(parent.cmdline()) \
                or "qcluster" in " ".join(parent.cmdline())
        except psutil.Error:
            alive = False
        if not alive:
            found.append(process.info["pid"])
    return found


def orphans_check() -> tuple[bool, str]:
    found = orphans()
    if found:
        return False, (f"{len(found)} orphaned worker process(es) (pid {', '.join(map(str, found[:10]))}): their "
                       "cluster died; stop them (kill) and run `yokeflow worker`")
    return True, "no orphaned worker processes"
