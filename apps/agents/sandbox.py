"""Running one command for an agent or a member: `run_command` puts it in the jail (`apps/agents/jail.py`) with a
scrubbed environment (`scrubbed_env`), resource limits and a timeout, keeps a bounded amount of its output and
kills every process it started once it is done. Before that, the guard-rail policy (`apps/agents/policy.py`)
refuses what a cooperative agent should not try; the file tools keep their own paths in the worktree
(`apps/agents/tools/files.py`).
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from apps.agents.egress import egress_env, egress_for
from apps.agents.jail import JailSpec, jail_cleanup, jailed_popen, service_forwards
from apps.agents.policy import check_command
from apps.core.errors import SandboxError

__all__ = ["SECRET_NAME", "CommandResult", "Limits", "run_command", "scrubbed_env"]


# --------------------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------------------

# Matched with `search` against variable names. The short words must be whole name parts (KEY matches
# SECRET_KEY but not KEYBOARD_LAYOUT); the long ones are distinctive enough anywhere (PGPASSWORD, GH_TOKEN).
SECRET_NAME = re.compile(
    r"(?<![A-Z0-9])(?:KEYS?|AUTH|AUTHORIZATION|COOKIES?|SESSION|DSN|PRIVATE|DATABASE_URL)(?![A-Z0-9])"
    r"|TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL|APIKEY",
    re.IGNORECASE,
)

# Names copied from YokeFlow's own environment; everything else (API keys, database URLs, …) stays out.
_ENV_ALLOWED = frozenset({"PATH", "LANG", "LANGUAGE", "TZ", "TERM"})
# Set for every command: no stray .pyc files in the diff, prompt-free git, plain non-interactive output.
_ENV_FIXED = {
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "GIT_TERMINAL_PROMPT": "0",
    "CI": "1",
    "NO_COLOR": "1",
}


def scrubbed_env(extra: Mapping[str, str] | None = None, *, home: str | None = None) -> dict[str, str]:
    """The environment for an agent's commands: an allow-list of YokeFlow's own, plus fixed settings and `extra`.

    `extra` entries whose names look like secrets are dropped, so a caller cannot leak one by accident.
    """
    env = {name: value for name, value in os.environ.items() if name in _ENV_ALLOWED or name.startswith("LC_")}
    env["PATH"] = _agent_path(env.get("PATH", os.defpath))
    env.setdefault("TERM", "dumb")
    if home is not None:
        env["HOME"] = home
    env.update(_ENV_FIXED)
    for name, value in (extra or {}).items():
        if not SECRET_NAME.search(name):
            env[name] = value
    return env


def _agent_path(path: str) -> str:
    """PATH without YokeFlow's own virtualenv (an agent's `pip install` would change YokeFlow itself) and
    without empty entries (they mean the current directory)."""
    own_bin = os.path.realpath(os.path.join(sys.prefix, "bin")) if sys.prefix != sys.base_prefix else None
    kept = [entry for entry in path.split(os.pathsep) if entry and os.path.realpath(entry) != own_bin]
    return os.pathsep.join(kept) or os.defpath


# --------------------------------------------------------------------------------------------------
# Running commands
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """Resource limits for each process a command starts (rlimits are per process, inherited by children)."""

    cpu_seconds: int = 300  # RLIMIT_CPU: SIGXCPU when reached, SIGKILL a few seconds later
    memory_bytes: int = 4 * 1024**3  # RLIMIT_AS: address space, so runtimes that reserve a lot may need more
    # RLIMIT_NPROC counts every process of the *user*, YokeFlow's own included, and is ignored for root.
    processes: int = 512
    file_size_bytes: int = 256 * 1024**2  # RLIMIT_FSIZE: a larger write fails and raises SIGXFSZ


# Seconds between SIGXCPU (the soft CPU limit, which a process could catch) and SIGKILL (the hard one).
_CPU_GRACE_S = 5
_CHUNK = 64 * 1024
# How long to wait for the output reader once the command is over. It only takes longer when a process
# that left the process group (setsid, a daemon) still holds the output pipe open.
READER_GRACE_S = 2.0


@dataclass
class CommandResult:
    command: str
    exit_code: int | None
    output: str
    truncated: bool
    timed_out: bool
    duration_s: float
    total_bytes: int
    # How many bytes of the start and of the end `output` shows when truncated.
    head_bytes: int = 0
    tail_bytes: int = 0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def as_text(self) -> str:
        """The result as the agent sees it: status line, output, and a note when output was left out."""
        parts = [self._status_line(), self.output if self.output else "(no output)"]
        if self.truncated:
            if self.head_bytes or self.tail_bytes:
                parts.append(
                    f"[output truncated: showing the first {self.head_bytes} and last {self.tail_bytes} "
                    f"of {self.total_bytes} bytes]"
                )
            else:
                parts.append(f"[output truncated: {self.total_bytes} bytes in total]")
        return "\n".join(parts)

    def _status_line(self) -> str:
        took = _seconds(self.duration_s)
        if self.timed_out:
            return f"timed out after {took} s: the command and every process it started were killed"
        if self.exit_code is None:
            return f"exit status unknown ({took} s)"
        if self.exit_code < 0:
            return f"killed by signal {_signal_text(-self.exit_code)} ({took} s)"
        line = f"exit code {self.exit_code} ({took} s)"
        # bash reports a child killed by signal N as 128 + N; say so, since the agent may not know.
        number = self.exit_code - 128
        if 0 < number <= 64 and _signal_name(number):
            line += f"; 128 + {number} usually means killed by signal {_signal_text(number)}"
        return line


_SIGNAL_HINTS: dict[int, str] = {
    signal.SIGXFSZ.value: "the file size limit was exceeded",
    signal.SIGXCPU.value: "the CPU time limit was exceeded",
    signal.SIGKILL.value: "killed outright, for example after using too much memory or CPU time",
    signal.SIGSEGV.value: "the program crashed",
}


def _signal_name(number: int) -> str | None:
    try:
        return signal.Signals(number).name
    except ValueError:
        return None


def _signal_text(number: int) -> str:
    name = _signal_name(number) or str(number)
    hint = _SIGNAL_HINTS.get(number)
    return f"{name}: {hint}" if hint else name


def _seconds(duration: float) -> str:
    return f"{duration:.1f}" if duration < 10 else f"{duration:.0f}"


class _Capture:
    """Keeps the first and the last `half` bytes of a stream and counts all of it, so memory stays bounded."""

    def __init__(self, half: int) -> None:
        self.half = half
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0
        self.lock = threading.Lock()

    def drain(self, stream: BinaryIO) -> None:
        """Reads `stream` to its end, then closes it (this thread owns it: see run_command)."""
        try:
            while chunk := stream.read(_CHUNK):
                self._feed(chunk)
        except (OSError, ValueError):
            pass  # the pipe broke: whatever was read so far is the output
        finally:
            stream.close()

    def _feed(self, chunk: bytes) -> None:
        with self.lock:
            self.total += len(chunk)
            room = self.half - len(self.head)
            if room > 0:
                self.head += chunk[:room]
                chunk = chunk[room:]
            if chunk:
                self.tail += chunk
                if len(self.tail) > self.half:
                    del self.tail[: len(self.tail) - self.half]

    def text(self) -> tuple[str, bool, int, int, int]:
        """(output, truncated, total bytes, head bytes, tail bytes) as of now."""
        with self.lock:
            head, tail, total = bytes(self.head), bytes(self.tail), self.total
        omitted = total - len(head) - len(tail)
        if omitted <= 0:
            return (head + tail).decode("utf-8", errors="replace"), False, total, len(head), len(tail)
        text = (
            head.decode("utf-8", errors="replace")
            + f"\n[... {omitted} bytes omitted ...]\n"
            + tail.decode("utf-8", errors="replace")
        )
        return text, True, total, len(head), len(tail)


def _capped(soft_value: int, hard_value: int, soft: int, hard: int) -> tuple[int, int]:
    """New (soft, hard) limits: the wanted values, but never above what the parent already has."""
    new_hard = hard_value if hard == resource.RLIM_INFINITY else min(hard_value, hard)
    new_soft = min(soft_value, new_hard)
    if soft != resource.RLIM_INFINITY:
        new_soft = min(new_soft, soft)
    return new_soft, new_hard


def _apply_limits(limits: Limits) -> Callable[[], None]:
    wanted = [
        (resource.RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + _CPU_GRACE_S),
        (resource.RLIMIT_AS, limits.memory_bytes, limits.memory_bytes),
        (resource.RLIMIT_NPROC, limits.processes, limits.processes),
        (resource.RLIMIT_FSIZE, limits.file_size_bytes, limits.file_size_bytes),
        (resource.RLIMIT_CORE, 0, 0),  # no core files in the worktree
    ]

    # Runs in the child between fork and exec: only setrlimit, nothing that could take a lock.
    def apply() -> None:
        for which, soft_value, hard_value in wanted:
            resource.setrlimit(which, _capped(soft_value, hard_value, *resource.getrlimit(which)))

    return apply


def _wait_for_exit(pid: int, deadline: float) -> bool:
    """Waits until process `pid` exits or `deadline` passes; True if it exited.

    The process is not reaped (WNOWAIT): its pid, which is also the process group id, cannot be reused
    until we reap it, so killing the group afterwards cannot hit an unrelated process.
    """
    delay = 0.001
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:
            return True  # already reaped elsewhere: it has certainly exited
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.05)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # every process of the group is gone already
        os.killpg(pgid, signal.SIGKILL)


# Process groups of the commands running now, by owner (a session id): cancelling a session kills them from
# another thread of the same worker, so a cancel does not wait for a long command to end.
_running_groups: dict[object, set[int]] = {}
_groups_lock = threading.Lock()


def kill_commands(owner: object) -> int:
    """Kill the process groups of every command `owner` is running now; returns how many were killed."""
    with _groups_lock:
        groups = list(_running_groups.get(owner, ()))
    for pgid in groups:
        _kill_group(pgid)
    return len(groups)


@contextlib.contextmanager
def _tracked(owner: object | None, pgid: int):
    if owner is None:
        yield
        return
    with _groups_lock:
        _running_groups.setdefault(owner, set()).add(pgid)
    try:
        yield
    finally:
        with _groups_lock:
            _running_groups.get(owner, set()).discard(pgid)
            if not _running_groups.get(owner):
                _running_groups.pop(owner, None)


def run_command(
    command: str,
    *,
    cwd: Path | str,
    timeout: float = 120.0,
    env: Mapping[str, str] | None = None,
    limits: Limits = Limits(),  # frozen, so sharing the default is safe
    max_output: int = 30_000,
    owner: object | None = None,
    network: str = "none",
    writable: Sequence[Path | str] = (),
) -> CommandResult:
    """Runs `command` with bash in `cwd`, in the jail (`apps/agents/jail.py`), with limits and a timeout.

    `cwd`, the HOME of `env` and `writable` are the only directories the command may write. Raises CommandRefused
    for a command the policy refuses, JailUnavailable when the jail cannot run here, and SandboxError if it cannot
    be started; a command that fails, crashes or times out is a CommandResult, since the agent should see it.
    """
    check_command(command)
    if not Path(cwd).is_dir():
        raise SandboxError(
            f"working directory {str(cwd)!r} does not exist", code="not_found", details={"cwd": str(cwd)}
        )
    env = dict(env) if env is not None else scrubbed_env(home=str(cwd))
    spec = egress_for(JailSpec(workdir=Path(cwd), writable=_writable(env, writable), network=network,
                               forwards=service_forwards(Path(cwd))))
    capture = _Capture(max(max_output, 0) // 2)
    start = time.monotonic()
    try:
        proc = jailed_popen(
            command, spec, env={**env, **egress_env(spec)}, preexec=_apply_limits(limits),
            processes=limits.processes, memory_bytes=limits.memory_bytes,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise SandboxError(f"could not start the command: {exc}", code="spawn_failed") from exc
    try:
        return _supervise(proc, command, capture, start, timeout, owner)
    finally:
        jail_cleanup(proc)


def _writable(env: Mapping[str, str], extra: Sequence[Path | str]) -> tuple[Path, ...]:
    home = env.get("HOME")
    dirs = [Path(p) for p in extra]
    if home and home != os.devnull and Path(home).is_dir():
        dirs.append(Path(home))
    return tuple(dirs)


def _supervise(proc: subprocess.Popen, command: str, capture: _Capture, start: float, timeout: float,
               owner: object | None) -> CommandResult:
    assert proc.stdout is not None  # stdout=PIPE
    reader = threading.Thread(target=capture.drain, args=(proc.stdout,), name="sandbox-output", daemon=True)
    reader.start()

    with _tracked(owner, proc.pid):
        exited = _wait_for_exit(proc.pid, start + timeout)
    # Timed out: stop everything. Exited: stop what it left running in the background (`server &`), which would
    # otherwise linger and keep the output pipe open (in the jail, the namespace's end already killed it).
    _kill_group(proc.pid)
    try:
        returncode = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        returncode = None  # stuck in the kernel even after SIGKILL; Popen reaps it later
    duration = time.monotonic() - start

    # The reader closes the pipe itself; closing it here while it still reads could hand its file
    # descriptor number to something else.
    reader.join(READER_GRACE_S)
    output, truncated, total, head, tail = capture.text()
    if reader.is_alive():
        output += "\n[a process that left the command's process group still holds the output open; rest not shown]"
    return CommandResult(
        command=command,
        exit_code=returncode if exited else None,
        output=output,
        truncated=truncated,
        timed_out=not exited,
        duration_s=duration,
        total_bytes=total,
        head_bytes=head,
        tail_bytes=tail,
    )
