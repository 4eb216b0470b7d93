"""The start of every offline benchmark: a temporary working directory, settings for an offline run (a fresh
SQLite database unless DATABASE_URL is set, the replay provider), and Django set up."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bench_django(prefix: str) -> Path:
    """Set Django up for a benchmark run and return its temporary working directory."""
    sys.path.insert(0, str(ROOT))
    work = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{work / 'bench.sqlite3'}")
    os.environ["PROJECTS_ROOT"] = str(work / "projects")
    os.environ["REPLAY_ROOT"] = str(work / "replay")
    os.environ["LLM_PROVIDER"] = "replay"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "yokeflow.settings")
    import django

    django.setup()
    return work
