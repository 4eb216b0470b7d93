"""Real django-q2 clusters for tests: started as subprocesses on the test database, killed like a crash."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

BASE_DIR = Path(__file__).resolve().parents[2]


def database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def start_cluster(log: Path, **env: str) -> subprocess.Popen:
    """`manage.py yokeflow worker` (a django-q2 cluster that reaps every second here) on the test database, with this
    test's PROJECTS_ROOT and `env` on top."""
    base = {"DJANGO_SETTINGS_MODULE": "yokeflow.settings", "DEBUG": "1", "SECRET_KEY": settings.SECRET_KEY,
            "DATABASE_URL": database_url(), "PROJECTS_ROOT": str(settings.PROJECTS_ROOT), "Q_WORKERS": "1",
            "SESSION_LEASE_SECONDS": "5", "REAPER_SECONDS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "manage.py", "yokeflow", "worker"], cwd=BASE_DIR,
                            env={**os.environ, **base, **env}, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def kill(cluster: subprocess.Popen) -> None:
    """SIGKILL the whole cluster (guard, pusher, workers): no clean shutdown, as in a crash."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(cluster.pid, signal.SIGKILL)
    cluster.wait(timeout=10)


def wait_for(condition, what: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; worker log:\n{log.read_text()[-4000:]}")
        time.sleep(0.2)
