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
import logging
import os
import re
import shlex
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import psutil
from django.conf import settings

from apps.agents.egress import egress_env, egress_for
from apps.agents.jail import SERVICE_PORTS_DIR, JailSpec, jailed_popen
from apps.agents.sandbox import run_command as sandbox_run
from apps.agents.sandbox import scrubbed_env
from apps.agents.tools.shell import SESSION_MARKER
from apps.core.errors import SandboxError
from apps.interventions.models import InterventionAction, PausedSession
from apps.interventions.services import action_record

__all__ = ["dev_service_stop", "free_port", "pip_install", "recovery_attempt", "restart_service"]

log = logging.getLogger(__name__)

Status = InterventionAction.Status

# Set on the dev service we start, so that stopping it later can tell it apart from anything else.
DEV_SERVICE_MARKER = "YOKEFLOW_DEV_SERVICE"  # the project id
WORKTREE_MARKER = "YOKEFLOW_WORKTREE"  # the worktree it was started in: the same project has many worktrees

STATE_DIR = ".yokeflow"
PID_FILE = "dev-service.pid"
LOG_FILE = "dev-service.log"

TERM_GRACE_S = 3.0  # between SIGTERM and SIGKILL
PORT_RELEASE_S = 1.0  # how long a freed port may take to become bindable
NO_PORT_GRACE_S = 1.0  # without a port to probe, a service still running after this counts as started
POLL_S = 0.1
TAIL_LINES = 20
TAIL_CHARS = 2000

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


# --------------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------------


def _record(pause: PausedSession, status: str, details: dict[str, Any]) -> InterventionAction:
    log.info("recovery for pause %s: %s %s", pause.pk, details.get("action"), status)
    return action_record(pause=pause, action_type=InterventionAction.Type.RECOVERY, status=status, details=details)


def _port(info: dict[str, Any]) -> int | None:
    value = info.get("port")
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        port = int(value)
    except ValueError:
        return None
    return port if 0 < port < 65536 else None


def _workdir(pause: PausedSession) -> Path | None:
    workdir = (pause.session.workdir or "").strip()
    return Path(workdir).resolve() if workdir and Path(workdir).is_dir() else None


def _tail(text: str) -> str:
    return "\n".join(text.splitlines()[-TAIL_LINES:])[-TAIL_CHARS:]


def _describe(proc: psutil.Process) -> str:
    try:
        return proc.name()
    except psutil.Error:
        return "?"


def _own_uid(proc: psutil.Process) -> bool:
    uids = proc.uids()
    return uids.real == os.getuid() and uids.effective == os.getuid()


def _environ(proc: psutil.Process) -> dict[str, str] | None:
    """The process's environment, or None when it cannot be read (another user's process, gone, a zombie)."""
    try:
        return proc.environ() if _own_uid(proc) else None
    except psutil.Error:
        return None


def _terminate(procs: list[psutil.Process]) -> list[psutil.Process]:
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


# --------------------------------------------------------------------------------------------------
# address_in_use: free the port
# --------------------------------------------------------------------------------------------------


def free_port(*, pause: PausedSession) -> InterventionAction:
    """Stop the session's own processes listening on the blocker's port; refuse if any listener is not its own."""
    port = _port(pause.blocker_info)
    details: dict[str, Any] = {"action": "free_port", "port": port}
    if port is None:
        return _record(pause, Status.SKIPPED, {**details, "message": "the blocker names no port"})
    try:
        listeners = _listeners(port)
    except psutil.Error as exc:
        return _record(pause, Status.FAILED, {**details, "message": f"cannot list listening sockets: {exc}"})
    if not listeners:
        return _record(pause, Status.OK, {**details, "message": "port already free"})
    foreign = [entry for entry in (_foreign_reason(proc, pause) for proc in listeners) if entry]
    if foreign:
        return _record(pause, Status.REFUSED, {**details, "listeners": foreign, "message": (
            "a process that is not this session's listens on the port; nothing was stopped")})
    stopped = [{"pid": proc.pid, "name": _describe(proc)} for proc in listeners]
    alive = _terminate(listeners)
    details["stopped"] = stopped
    if alive or not _port_free(port):
        return _record(pause, Status.FAILED, {**details, "still_alive": [p.pid for p in alive],
                                              "message": "the port is still in use after stopping its listeners"})
    return _record(pause, Status.OK, {**details, "message": f"stopped {len(stopped)} process(es); the port is free"})


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
    entry = {"pid": proc.pid, "name": _describe(proc)}
    if proc.pid == os.getpid():
        return {**entry, "reason": "YokeFlow itself"}
    env = _environ(proc)
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


# --------------------------------------------------------------------------------------------------
# missing_module: pip install into the worktree's virtualenv
# --------------------------------------------------------------------------------------------------


def pip_install(*, pause: PausedSession) -> InterventionAction:
    """Install the missing module's package (allowlisted only) into `<worktree>/.venv`, then import it."""
    module = str(pause.blocker_info.get("module") or "").strip()
    details: dict[str, Any] = {"action": "pip_install", "module": module}
    if not _MODULE_NAME.fullmatch(module):
        return _record(pause, Status.REFUSED, {**details, "message": "the blocker names no valid module"})
    top = module.split(".")[0]
    package = _allowed_package(top)
    if package is None:
        return _record(pause, Status.REFUSED, {**details, "message": (
            f"{top!r} is not on RECOVERY_PIP_ALLOWLIST; only allowlisted packages are installed automatically")})
    details["package"] = package
    workdir = _workdir(pause)
    if workdir is None or not _has_own_venv(workdir):
        return _record(pause, Status.SKIPPED, {**details, "message": (
            "no virtualenv in the worktree; YokeFlow never installs into other environments")})
    install = _venv_run(pause, workdir, ["-m", "pip", "install", "--no-cache-dir", package,
                                         *settings.RECOVERY_PIP_ARGS])
    if install is not None:
        return _record(pause, Status.FAILED, {**details, **install, "message": "pip install failed"})
    check = _venv_run(pause, workdir, ["-I", "-c", f"import {top}"])  # -I: not the worktree's own files
    if check is not None:
        return _record(pause, Status.FAILED, {**details, **check, "message": "installed, but the import fails"})
    return _record(pause, Status.OK, {**details, "message": f"installed {package}; `import {top}` works"})


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
            "output_tail": _tail(result.output)}


# --------------------------------------------------------------------------------------------------
# service_refused: restart the project's dev service
# --------------------------------------------------------------------------------------------------

# The dev services this process started, by pid: kept so they are reaped when they exit (no zombies, and no
# "subprocess still running" warning when a Popen object is dropped).
_started: dict[int, subprocess.Popen] = {}


def restart_service(*, pause: PausedSession) -> InterventionAction:
    """Stop the worktree's previous dev service (if it is ours), start the project's again and wait for its port."""
    command = (pause.project.dev_service or "").strip()
    port = _port(pause.blocker_info)
    details: dict[str, Any] = {"action": "restart_service", "port": port}
    if not command:
        return _record(pause, Status.SKIPPED, {**details, "message": "the project declares no dev service"})
    workdir = _workdir(pause)
    if workdir is None:
        return _record(pause, Status.SKIPPED, {**details, "message": "the session has no worktree"})
    details["stopped_previous"] = dev_service_stop(workdir=workdir, project_id=pause.project_id,
                                                   session_id=pause.session_id)
    try:
        proc = _dev_service_start(command, workdir=workdir, project=pause.project, port=port)
    except (OSError, SandboxError) as exc:
        return _record(pause, Status.FAILED, {**details, "message": f"could not start the dev service: {exc}"})
    details["pid"] = proc.pid
    ok, message = _dev_service_wait(proc, workdir=workdir, port=port)
    if ok:
        return _record(pause, Status.OK, {**details, "message": message})
    dev_service_stop(workdir=workdir, project_id=pause.project_id)  # a half-started service helps nobody
    return _record(pause, Status.FAILED, {**details, "message": message, "log_tail": _log_tail(workdir)})


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
    env = _environ(proc)
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
        return not _terminate([proc])
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
        return _tail((workdir / STATE_DIR / LOG_FILE).read_text(errors="replace"))
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


_ACTIONS: dict[str, Callable[..., InterventionAction]] = {
    "address_in_use": free_port,
    "missing_module": pip_install,
    "service_refused": restart_service,
}
