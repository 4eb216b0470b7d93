"""Automatic recovery for a paused session: a few safe, narrowly scoped repairs, each recorded as an action.

What the critical-error detector found (`pause.blocker_info["pattern"]`) picks at most one repair:

- `address_in_use` → `free_port`: stops the processes listening on the port, but only when every one of them
  belongs to the paused session (its environment carries `YOKEFLOW_AGENT_RUN=<session id>`, which every process
  a session starts inherits) and runs as our user. If any listener is someone else's — another session, the
  person's own server, YokeFlow itself, a process whose environment cannot be read — nothing is stopped at all:
  killing a process we cannot attribute could take down work that is not ours.
- `missing_module` → `pip_install`: installs a package, but only one named in `RECOVERY_PIP_ALLOWLIST` (the
  module name comes from the agent's output, so it is never trusted as a package name by itself), and only
  into the worktree's own virtualenv (`<worktree>/.venv`), never into YokeFlow's or the system's environment.
  The install runs in the jail (`run_command`) with the project's network mode: a project without network
  (`none`, the default) cannot download, so the action fails and a person decides.
- `service_refused` → `restart_service`: restarts the project's declared dev service (a command the project's
  owner configured, not something the agent wrote) in the worktree, in its own jail, which exports the port to
  the worktree's later commands once it accepts connections. The previous instance is stopped only if
  its environment carries our markers; a pid file is in the worktree, so the agent could have written it.

Every other pattern (permission denied, disk full, out of memory, provider authentication) needs a person:
`recovery_attempt` returns None for them. An expected failure is an action with status failed/refused/
skipped, never an exception, so the caller can always go on to notify people.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from django.conf import settings

from apps.agents.sandbox import run_command as sandbox_run
from apps.agents.sandbox import scrubbed_env
from apps.agents.tools.shell import SESSION_MARKER
from apps.core.errors import SandboxError
from apps.interventions.models import InterventionAction, PausedSession
from apps.interventions.recovery.common import (
    POLL_S,
    Status,
    action_done,
    describe,
    environ_of,
    port_of,
    tail,
    terminate,
    workdir_of,
)
from apps.interventions.recovery.dev_service import restart_service

PORT_RELEASE_S = 1.0  # how long a freed port may take to become bindable


# Import names whose package is called something else. Only names people commonly hit; anything missing here
# is looked up under its import name, so the allowlist can also name it that way.
IMPORT_TO_PACKAGE = {
    "yaml": "pyyaml",
    "dotenv": "python-dotenv",
    "jinja2": "jinja2",  # published as Jinja2: the case-insensitive comparison covers it
    "pil": "pillow",
    "bs4": "beautifulsoup4",
    "dateutil": "python-dateutil",
    "sklearn": "scikit-learn",
}


_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


_PACKAGE_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")


def recovery_attempt(*, pause: PausedSession) -> InterventionAction | None:
    """Try the one safe repair the pause's blocker calls for; None when no automatic repair applies."""
    info = pause.blocker_info if isinstance(pause.blocker_info, dict) else {}
    action = _ACTIONS.get(str(info.get("pattern", "")))
    if action is None:
        return None
    return action(pause=pause)


def free_port(*, pause: PausedSession) -> InterventionAction:
    """Stop the session's own processes listening on the blocker's port; refuse if any listener is not its own."""
    port = port_of(pause.blocker_info)
    details: dict[str, Any] = {"action": "free_port", "port": port}
    if port is None:
        return action_done(pause, Status.SKIPPED, {**details, "message": "the blocker names no port"})
    try:
        listeners = _listeners(port)
    except psutil.Error as exc:
        return action_done(pause, Status.FAILED, {**details, "message": f"cannot list listening sockets: {exc}"})
    if not listeners:
        return action_done(pause, Status.OK, {**details, "message": "port already free"})
    foreign = [entry for entry in (_foreign_reason(proc, pause) for proc in listeners) if entry]
    if foreign:
        return action_done(pause, Status.REFUSED, {**details, "listeners": foreign, "message": (
            "a process that is not this session's listens on the port; nothing was stopped")})
    stopped = [{"pid": proc.pid, "name": describe(proc)} for proc in listeners]
    alive = terminate(listeners)
    details["stopped"] = stopped
    if alive or not _port_free(port):
        return action_done(pause, Status.FAILED, {**details, "still_alive": [p.pid for p in alive],
                                                  "message": "the port is still in use after stopping its listeners"})
    return action_done(pause, Status.OK,
                       {**details, "message": f"stopped {len(stopped)} process(es); the port is free"})


def _listeners(port: int) -> list[psutil.Process | None]:
    """The processes listening on `port`; None for a listener whose process cannot be seen (another user's)."""
    pids = {conn.pid for conn in psutil.net_connections(kind="inet")
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port}
    procs: list[psutil.Process | None] = []
    for pid in pids:
        if pid is None:
            procs.append(None)
            continue
        with contextlib.suppress(psutil.NoSuchProcess):  # exited meanwhile: no longer in the way
            procs.append(psutil.Process(pid))
    return procs


def _foreign_reason(proc: psutil.Process | None, pause: PausedSession) -> dict[str, Any] | None:
    """Why this listener may not be stopped, or None if it is the paused session's own."""
    if proc is None:
        return {"pid": None, "name": "?", "reason": "a process of another user (not visible)"}
    entry = {"pid": proc.pid, "name": describe(proc)}
    if proc.pid == os.getpid():
        return {**entry, "reason": "YokeFlow itself"}
    env = environ_of(proc)
    if env is None:
        return {**entry, "reason": "runs as another user or its environment cannot be read"}
    owner = env.get(SESSION_MARKER)
    if owner == str(pause.session_id):
        return None
    reason = f"belongs to session {owner}" if owner else "not started by a YokeFlow session"
    return {**entry, "reason": reason}


def _port_free(port: int) -> bool:
    """Whether the port can be bound again (a listening socket closes with its process, but allow a moment)."""
    deadline = time.monotonic() + PORT_RELEASE_S
    while True:
        if _bindable(port):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR: connections in TIME_WAIT do not count; a listener on the port still does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def pip_install(*, pause: PausedSession) -> InterventionAction:
    """Install the missing module's package (allowlisted only) into `<worktree>/.venv`, then import it."""
    module = str(pause.blocker_info.get("module") or "").strip()
    details: dict[str, Any] = {"action": "pip_install", "module": module}
    if not _MODULE_NAME.fullmatch(module):
        return action_done(pause, Status.REFUSED, {**details, "message": "the blocker names no valid module"})
    top = module.split(".")[0]
    package = _allowed_package(top)
    if package is None:
        return action_done(pause, Status.REFUSED, {**details, "message": (
            f"{top!r} is not on RECOVERY_PIP_ALLOWLIST; only allowlisted packages are installed automatically")})
    details["package"] = package
    workdir = workdir_of(pause)
    if workdir is None or not _has_own_venv(workdir):
        return action_done(pause, Status.SKIPPED, {**details, "message": (
            "no virtualenv in the worktree; YokeFlow never installs into other environments")})
    install = _venv_run(pause, workdir, ["-m", "pip", "install", "--no-cache-dir", package,
                                         *settings.RECOVERY_PIP_ARGS])
    if install is not None:
        return action_done(pause, Status.FAILED, {**details, **install, "message": "pip install failed"})
    check = _venv_run(pause, workdir, ["-I", "-c", f"import {top}"])  # -I: not the worktree's own files
    if check is not None:
        return action_done(pause, Status.FAILED, {**details, **check, "message": "installed, but the import fails"})
    return action_done(pause, Status.OK, {**details, "message": f"installed {package}; `import {top}` works"})


def _canonical(name: str) -> str:
    # PEP 503: case, '-', '_' and '.' do not distinguish package names.
    return re.sub(r"[-_.]+", "-", name).lower()


def _allowed_package(top_module: str) -> str | None:
    """The allowlist entry (as written there) for the package that provides `top_module`, if any."""
    wanted = _canonical(IMPORT_TO_PACKAGE.get(top_module.lower(), top_module))
    for entry in settings.RECOVERY_PIP_ALLOWLIST:
        if _canonical(entry) == wanted and _PACKAGE_NAME.fullmatch(entry):
            return entry
    return None


def _has_own_venv(workdir: Path) -> bool:
    """A real virtualenv that lies inside the worktree (a `.venv` symlink to a shared one does not count)."""
    venv = workdir / ".venv"
    return (venv.resolve().is_relative_to(workdir) and (venv / "pyvenv.cfg").is_file()
            and (venv / "bin" / "python").is_file())


def _venv_run(pause: PausedSession, workdir: Path, args: list[str]) -> dict[str, Any] | None:
    """Run the worktree venv's python with `args` in the sandbox; None on success, else what went wrong."""
    command = shlex.join([".venv/bin/python", *args])
    env = scrubbed_env({"VIRTUAL_ENV": str(workdir / ".venv"), "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                        "PIP_NO_INPUT": "1", SESSION_MARKER: str(pause.session_id)}, home=str(workdir))
    try:
        result = sandbox_run(command, cwd=workdir, timeout=float(settings.RECOVERY_TIMEOUT), env=env,
                             owner=pause.session_id, network=pause.project.network)
    except SandboxError as exc:
        return {"command": command, "output_tail": str(exc)}
    if result.ok:
        return None
    return {"command": command, "exit_code": result.exit_code, "timed_out": result.timed_out,
            "output_tail": tail(result.output)}


_ACTIONS: dict[str, Callable[..., InterventionAction]] = {
    "address_in_use": free_port,
    "missing_module": pip_install,
    "service_refused": restart_service,
}
