"""What the recovery actions share: how an action is recorded, the pause's port and worktree, process helpers."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import psutil

from apps.interventions.models import InterventionAction, PausedSession
from apps.interventions.services import action_record

log = logging.getLogger(__name__)


Status = InterventionAction.Status


TERM_GRACE_S = 3.0  # between SIGTERM and SIGKILL


POLL_S = 0.1


TAIL_LINES = 20


TAIL_CHARS = 2000


def action_done(pause: PausedSession, status: str, details: dict[str, Any]) -> InterventionAction:
    log.info("recovery for pause %s: %s %s", pause.pk, details.get("action"), status)
    return action_record(pause=pause, action_type=InterventionAction.Type.RECOVERY, status=status, details=details)


def port_of(info: dict[str, Any]) -> int | None:
    value = info.get("port")
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        port = int(value)
    except ValueError:
        return None
    return port if 0 < port < 65536 else None


def workdir_of(pause: PausedSession) -> Path | None:
    workdir = (pause.session.workdir or "").strip()
    return Path(workdir).resolve() if workdir and Path(workdir).is_dir() else None


def tail(text: str) -> str:
    return "\n".join(text.splitlines()[-TAIL_LINES:])[-TAIL_CHARS:]


def describe(proc: psutil.Process) -> str:
    try:
        return proc.name()
    except psutil.Error:
        return "?"


def own_uid(proc: psutil.Process) -> bool:
    uids = proc.uids()
    return uids.real == os.getuid() and uids.effective == os.getuid()


def environ_of(proc: psutil.Process) -> dict[str, str] | None:
    """The process's environment, or None when it cannot be read (another user's process, gone, a zombie)."""
    try:
        return proc.environ() if own_uid(proc) else None
    except psutil.Error:
        return None


def terminate(procs: list[psutil.Process]) -> list[psutil.Process]:
    """SIGTERM, up to TERM_GRACE_S to exit, then SIGKILL; returns the processes still alive after all that."""
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()  # psutil checks the pid still names the same process (create time) first
    _, alive = psutil.wait_procs(procs, timeout=TERM_GRACE_S)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    _, alive = psutil.wait_procs(alive, timeout=TERM_GRACE_S)
    return alive
