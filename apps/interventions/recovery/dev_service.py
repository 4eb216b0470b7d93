"""The third repair: restarting the project's dev service in its own jail (which exports its port to the
worktree's later commands), and stopping it again, only when it carries our markers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path
from typing import Any, BinaryIO

import psutil
from django.conf import settings

from apps.agents.egress import egress_env, egress_for
from apps.agents.jail import SERVICE_PORTS_DIR, JailSpec, jailed_popen
from apps.agents.sandbox import scrubbed_env
from apps.agents.tools.shell import SESSION_MARKER
from apps.core.errors import SandboxError
from apps.interventions.models import InterventionAction, PausedSession
from apps.interventions.recovery.common import (
    POLL_S,
    TERM_GRACE_S,
    Status,
    action_done,
    environ_of,
    port_of,
    tail,
    terminate,
    workdir_of,
)

# Set on the dev service we start, so that stopping it later can tell it apart from anything else.
DEV_SERVICE_MARKER = "YOKEFLOW_DEV_SERVICE"  # the project id


WORKTREE_MARKER = "YOKEFLOW_WORKTREE"  # the worktree it was started in: the same project has many worktrees


STATE_DIR = ".yokeflow"


PID_FILE = "dev-service.pid"


LOG_FILE = "dev-service.log"


NO_PORT_GRACE_S = 1.0  # without a port to probe, a service still running after this counts as started


# The dev services this process started, by pid: kept so they are reaped when they exit (no zombies, and no
# "subprocess still running" warning when a Popen object is dropped).
_started: dict[int, subprocess.Popen] = {}


def restart_service(*, pause: PausedSession) -> InterventionAction:
    """Stop the worktree's previous dev service (if it is ours), start the project's again and wait for its port."""
    command = (pause.project.dev_service or "").strip()
    port = port_of(pause.blocker_info)
    details: dict[str, Any] = {"action": "restart_service", "port": port}
    if not command:
        return action_done(pause, Status.SKIPPED, {**details, "message": "the project declares no dev service"})
    workdir = workdir_of(pause)
    if workdir is None:
        return action_done(pause, Status.SKIPPED, {**details, "message": "the session has no worktree"})
    details["stopped_previous"] = dev_service_stop(workdir=workdir, project_id=pause.project_id,
                                                   session_id=pause.session_id)
    try:
        proc = _dev_service_start(command, workdir=workdir, project=pause.project, port=port)
    except (OSError, SandboxError) as exc:
        return action_done(pause, Status.FAILED, {**details, "message": f"could not start the dev service: {exc}"})
    details["pid"] = proc.pid
    ok, message = _dev_service_wait(proc, workdir=workdir, port=port)
    if ok:
        return action_done(pause, Status.OK, {**details, "message": message})
    dev_service_stop(workdir=workdir, project_id=pause.project_id)  # a half-started service helps nobody
    return action_done(pause, Status.FAILED, {**details, "message": message, "log_tail": _log_tail(workdir)})


def dev_service_stop(*, workdir: Path, project_id: int | None = None, session_id: int | None = None) -> bool:
    """Stop the dev service started in `workdir` (its whole process group); True if one was running.

    The pid file lies in the worktree, where the agent could write anything, so the process is only stopped
    when it carries the markers set at start (dev service of `project_id`, if given, in this worktree) or the
    session marker of `session_id`.
    """
    workdir = Path(workdir).resolve()
    pid_file = workdir / STATE_DIR / PID_FILE
    pid = _read_pid(pid_file)
    if pid is None:
        return False
    stopped = False
    with contextlib.suppress(psutil.NoSuchProcess):
        proc = psutil.Process(pid)
        if _is_dev_service(proc, workdir=workdir, project_id=project_id, session_id=session_id):
            stopped = _stop_group(proc)
    pid_file.unlink(missing_ok=True)
    if stopped:
        for exported in (workdir / SERVICE_PORTS_DIR).glob("*.sock"):
            exported.unlink(missing_ok=True)
    _reap_started()
    return stopped


def _read_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid > 1 else None


def _is_dev_service(proc: psutil.Process, *, workdir: Path, project_id: int | None, session_id: int | None) -> bool:
    env = environ_of(proc)
    if env is None or proc.pid == os.getpid():
        return False
    if session_id is not None and env.get(SESSION_MARKER) == str(session_id):
        return True
    service = env.get(DEV_SERVICE_MARKER)
    if service is None or (project_id is not None and service != str(project_id)):
        return False
    return env.get(WORKTREE_MARKER) == str(workdir)


def _stop_group(proc: psutil.Process) -> bool:
    """SIGTERM the process's group (the service and what it started), SIGKILL after the grace period."""
    try:
        group = os.getpgid(proc.pid)
    except ProcessLookupError:
        return False
    if group != proc.pid:  # not a group leader, so not started by us in its own session: only the process itself
        return not terminate([proc])
    _signal_group(group, signal.SIGTERM)
    _, alive = psutil.wait_procs([proc], timeout=TERM_GRACE_S)
    # Also after a clean exit: children that ignored SIGTERM keep the group (and its id) alive until killed.
    _signal_group(group, signal.SIGKILL)
    _, alive = psutil.wait_procs(alive, timeout=TERM_GRACE_S)
    return not alive


def _signal_group(group: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group is empty already
        os.killpg(group, sig)


def _log_tail(workdir: Path) -> str:
    try:
        return tail((workdir / STATE_DIR / LOG_FILE).read_text(errors="replace"))
    except OSError as exc:
        return f"(the log cannot be read: {exc})"


def _reap_started() -> None:
    for pid, proc in list(_started.items()):
        if proc.poll() is not None:
            _started.pop(pid, None)


def _dev_service_start(command: str, *, workdir: Path, project: Any, port: int | None) -> subprocess.Popen:
    """Start the dev service in its own jail; with a port, the jail exports it to the worktree's other jails."""
    state = _state_dir(workdir)
    extra = {DEV_SERVICE_MARKER: str(project.pk), WORKTREE_MARKER: str(workdir)}
    forwards: tuple[str, ...] = ()
    if port is not None:
        extra["PORT"] = str(port)
        socket_path = _ports_dir(workdir) / f"{port}.sock"
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()  # the export appears again once the new instance accepts connections
        forwards = (f"export:{socket_path}={port}",)
    spec = egress_for(JailSpec(workdir=workdir, network=project.network, forwards=forwards))
    with _open_new(state / LOG_FILE) as log_file:  # truncated: the log tail must be this start's
        proc = jailed_popen(command, spec, env={**scrubbed_env(extra, home=str(workdir)), **egress_env(spec)},
                            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, wait_cleanup=True)
    _started[proc.pid] = proc
    with _open_new(state / PID_FILE) as pid_file:
        pid_file.write(f"{proc.pid}\n".encode())
    return proc


def _ports_dir(workdir: Path) -> Path:
    ports = workdir / SERVICE_PORTS_DIR
    ports.mkdir(parents=True, exist_ok=True)
    if not ports.resolve().is_relative_to(workdir):
        raise OSError(f"{ports} leads outside the worktree")
    return ports.resolve()


def _state_dir(workdir: Path) -> Path:
    """`<worktree>/.yokeflow`, refused if the agent made it a link that leads out of the worktree."""
    state = workdir / STATE_DIR
    state.mkdir(exist_ok=True)
    if not state.resolve().is_relative_to(workdir):
        raise OSError(f"{state} leads outside the worktree")
    return state


def _open_new(path: Path) -> BinaryIO:
    # O_NOFOLLOW: a symlink planted in the worktree must not make us truncate a file elsewhere.
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644), "wb")


def _dev_service_wait(proc: subprocess.Popen, *, workdir: Path, port: int | None) -> tuple[bool, str]:
    """Until the service accepts connections on its port (its jail exports the port only then) or, without a port,
    a short grace period passes, or the process exits."""
    limit = float(settings.RECOVERY_TIMEOUT) if port is not None else min(NO_PORT_GRACE_S, settings.RECOVERY_TIMEOUT)
    deadline = time.monotonic() + limit
    while True:
        if proc.poll() is not None:
            return False, f"the dev service exited with code {proc.returncode}"
        if port is not None and _exported(workdir, port):
            return True, f"the dev service accepts connections on port {port}"
        if time.monotonic() >= deadline:
            break
        time.sleep(POLL_S)
    if port is None:
        return True, "the dev service started (no port known to check)"
    return False, f"the dev service did not accept connections on port {port} within {limit:.0f} s"


def _exported(workdir: Path, port: int) -> bool:
    """The jail exported the port: a socket (not a link the agent planted) that accepts a connection."""
    path = workdir / SERVICE_PORTS_DIR / f"{port}.sock"
    try:
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(POLL_S)
            probe.connect(str(path))
        return True
    except OSError:
        return False
