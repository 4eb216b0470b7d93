"""Crash points for tests: a worker kills itself with SIGKILL exactly where a test asks it to.

`YOKEFLOW_FAULT=<point>` names the point (e.g. `after-commit`); with `YOKEFLOW_FAULT_ONCE=<file>` the process
creates the file first and fires only if it did not exist, so the worker that takes the work over lives. Without
the variable a point costs one dictionary lookup. Nothing but crash tests and `bench/soak.py` sets it.
"""

from __future__ import annotations

import os
import signal

# The points of the durable merge, in the order a merge passes them.
MERGE_POINTS = ("after-commit", "before-merge", "after-tests-on-main", "after-merge", "before-done",
                "during-cleanup")


def fault_point(name: str) -> None:
    """Die here, as a crash would (no clean-up, no finally), if the environment asks for it."""
    if os.environ.get("YOKEFLOW_FAULT") != name:
        return
    once = os.environ.get("YOKEFLOW_FAULT_ONCE")
    if once:
        try:
            os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            return  # it fired already: the worker that resumes the work passes through
    os.kill(os.getpid(), signal.SIGKILL)
