"""Per-command cgroups for the jail: a process and memory ceiling for everything one command starts.

cgroup v2 under a delegated directory (`SANDBOX_CGROUP`), or the worker's own cgroup v1 `pids` and `memory`
hierarchies when they are writable (as root). Without either, only rlimits bound a command (see jail.py).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import signal
import threading
from pathlib import Path

from django.conf import settings

__all__ = ["Cgroups", "cgroup_parents"]

log = logging.getLogger(__name__)


def cgroup_parents() -> dict[str, Path]:
    """Controller → a cgroup directory below which this process may create the jails' cgroups.

    cgroup v2: `SANDBOX_CGROUP`, a delegated directory (the worker itself must not be in it: v2 has no processes in
    inner nodes). cgroup v1: the worker's own `pids` and `memory` cgroups, when they are writable (usually as root).
    """
    found: dict[str, Path] = {}
    delegated = settings.SANDBOX_CGROUP
    if delegated:
        base = Path(delegated)
        with contextlib.suppress(OSError):
            enabled = (base / "cgroup.subtree_control").read_text().split()
            for controller in ("pids", "memory"):
                if controller in enabled and os.access(base, os.W_OK):
                    found[controller] = base
        return found
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in ("pids", "memory"):
                directory = Path("/sys/fs/cgroup", controller, path.lstrip("/"))
                if controller in controllers.split(",") and (directory / "cgroup.procs").exists() \
                        and os.access(directory, os.W_OK):
                    found[controller] = directory
    return found


_counter = itertools.count()


class Cgroups:
    """The cgroups of one jailed command: created before it starts, emptied and removed after it ends."""

    def __init__(self, *, processes: int, memory_bytes: int) -> None:
        self.dirs: list[Path] = []
        name = f"yokeflow-jail-{os.getpid()}-{next(_counter)}"
        wanted = {"pids": {"pids.max": str(processes)},
                  "memory": {"memory.max": str(memory_bytes), "memory.limit_in_bytes": str(memory_bytes),
                             "memory.swap.max": "0"}}
        for controller, parent in cgroup_parents().items():
            directory = parent / name
            try:
                directory.mkdir(exist_ok=True)
            except OSError as exc:
                log.warning("jail: cannot create cgroup %s: %s", directory, exc)
                continue
            for limit, value in wanted[controller].items():
                if (directory / limit).exists():
                    with contextlib.suppress(OSError):
                        (directory / limit).write_text(value)
            if directory not in self.dirs:
                self.dirs.append(directory)
        self._procs = [str(d / "cgroup.procs") for d in self.dirs]

    def enter(self) -> None:
        """Runs in the child between fork and exec: only os calls, no locks."""
        for procs in self._procs:
            fd = os.open(procs, os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)

    def close(self) -> None:
        """Kill whatever is left in the cgroups and remove them."""
        for directory in self.dirs:
            for _ in range(50):
                pids = _cgroup_pids(directory)
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
                threading.Event().wait(0.01)
            with contextlib.suppress(OSError):
                directory.rmdir()


def _cgroup_pids(directory: Path) -> list[int]:
    try:
        return [int(p) for p in (directory / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []
