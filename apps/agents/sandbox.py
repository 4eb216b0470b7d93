"""The confinement layer between a coding agent's tools and the machine it runs on.

An agent works inside one git worktree. Its file tools go through `resolve_path`, which only hands out
paths that really lie inside the worktree (after following symlinks) and never inside `.git`. Its shell
tool goes through `run_command`, which runs the command in the jail (`apps/agents/jail.py`: bubblewrap
namespaces, a read-only system, the worktree and HOME as the only writable places, no network unless the
project's mode allows registries) with a scrubbed environment, resource limits and a timeout, keeps only a
bounded amount of output and kills every process the command started once it is done.

`check_command` and its `POLICY` table are a guard-rail for a *cooperative* agent: they catch the
commands a model typically reaches for by mistake (sudo, `rm -rf /`, `curl … | sh`, writing outside the
worktree, pushing) and explain why, so the agent can pick another way. They are regular expressions over
the command text and cannot stop a determined adversary (quoting, variables, `python -c` all get past
them): the jail is the boundary (`tests/agents/test_jail.py` attacks it with the policy out of the way).
Code that runs git in a worktree after an agent has used it still does not trust the worktree's git
configuration (for example `git -c core.hooksPath=/dev/null`), which matters in the unsafe `SANDBOX=policy`
mode, where commands run without the jail.
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
from apps.core.errors import SandboxError

__all__ = [
    "POLICY",
    "SECRET_NAME",
    "CommandRefused",
    "CommandResult",
    "Limits",
    "PathOutsideWorktree",
    "PolicyRule",
    "check_command",
    "resolve_path",
    "run_command",
    "scrubbed_env",
]


class PathOutsideWorktree(SandboxError):
    code = "path_outside_worktree"


class CommandRefused(SandboxError):
    code = "command_refused"


# --------------------------------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------------------------------

_USE_RELATIVE = "use a path relative to the worktree root"


def resolve_path(root: Path | str, path: str, *, must_exist: bool = False) -> Path:
    """The absolute, symlink-resolved form of `path` (relative to `root`), refusing anything outside `root`."""
    base = Path(root).resolve()
    _check_path_text(path)
    try:
        resolved = (base / path).resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise SandboxError(
            f"path {path!r} cannot be resolved ({exc}); {_USE_RELATIVE}", code="invalid_path", details={"path": path}
        ) from exc
    if not resolved.is_relative_to(base):
        raise PathOutsideWorktree(_outside_message(path), details={"path": path})
    # Checked on both forms: the text may name .git directly, or a symlink inside the worktree may lead there.
    if _has_git_part(Path(path).parts) or _has_git_part(resolved.relative_to(base).parts):
        raise PathOutsideWorktree(
            f"path {path!r} is inside .git, which is off limits: git's internals are managed by YokeFlow "
            "(use git commands to look at history and status)",
            details={"path": path},
        )
    if must_exist and not resolved.exists():
        raise SandboxError(f"path {path!r} does not exist in the worktree", code="not_found", details={"path": path})
    return resolved


def _check_path_text(path: str) -> None:
    """Refusals that need no file system: they are about what the agent wrote, not where it leads."""
    if not path or not path.strip():
        raise PathOutsideWorktree(f"path is empty; {_USE_RELATIVE}, or '.' for the root itself", details={"path": path})
    if "\0" in path:
        raise PathOutsideWorktree(f"path {path!r} contains a NUL byte; {_USE_RELATIVE}", details={"path": path})
    if os.path.isabs(path):
        raise PathOutsideWorktree(f"path {path!r} is absolute; {_USE_RELATIVE}", details={"path": path})
    if path.startswith("~"):
        raise PathOutsideWorktree(
            f"path {path!r} points into a home directory, which is outside the worktree; {_USE_RELATIVE}",
            details={"path": path},
        )


def _outside_message(path: str) -> str:
    # Telling `../x` apart from a symlink that leads out helps the agent understand what went wrong.
    if os.path.normpath(path).split(os.sep)[0] == "..":
        return f"path {path!r} is outside the worktree; {_USE_RELATIVE}"
    return f"path {path!r} leads outside the worktree through a symbolic link; {_USE_RELATIVE}"


def _has_git_part(parts: tuple[str, ...]) -> bool:
    return any(part.casefold() == ".git" for part in parts)


# --------------------------------------------------------------------------------------------------
# Command policy
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyRule:
    name: str
    pattern: re.Pattern[str]
    reason: str


# Building blocks for the patterns. They approximate shell syntax: good enough to recognise what an agent
# writes in the open, deliberately not a parser (see the module docstring).

# Where a command word can begin: the start of a line, after a separator or opening bracket, inside a
# command substitution, after a keyword, or at the start of the quoted script given to `sh -c` / `eval`.
_START = r"""(?:^|[;&|({`!\n]|\$\(|\b(?:if|then|do|else|elif|while|until)\s|-c\s+["']|\beval\s+["']?)\s*"""
# Words that run the command after them: `FOO=1 env nice -n 5 timeout 10 rm …` still starts `rm`.
_WRAPPERS = (
    r"""(?:(?:[A-Za-z_]\w*=(?:"[^"]*"|'[^']*'|[^\s;&|]*)|env|exec|nohup|time|command|builtin|nice|ionice|"""
    r"""stdbuf|setsid|xargs|timeout)(?:\s+-[^\s;&|]*)*(?:\s+\d+[smhd]?)?\s+)*"""
)
# Characters that end a word, for "this path component ends here".
_SEP = r"""\s;&|<>"')`"""
# A path that leaves the worktree: absolute, in a home directory, or climbing out with `..`.
_OUTSIDE = r"""["']?(?:/|~|\$\{?HOME\b|\$\{?OLDPWD\b|(?:[^""" + _SEP + r"""]*/)?\.\.(?=[/""" + _SEP + r"""]|$))"""
# A path into git's internals (hooks there run outside the sandbox the next time YokeFlow uses git).
_GITDIR = r"""["']?(?:[^""" + _SEP + r"""]*/)?\.git(?=[/""" + _SEP + r"""]|$)"""
# The only absolute paths a command may write to.
_SAFE_DEV = r"""["']?/dev/(?:null|stdout|stderr|fd/\d+)(?=[""" + _SEP + r"""]|$)"""
# The rest of one simple command (up to the next separator).
_ARGS = r"[^;&|\n]*"
_RECURSIVE_RM = r"(?=" + _ARGS + r"\s(?:-[a-zA-Z]*[rR]|--recursive\b))"
_RECURSIVE_CHMOD = r"(?=" + _ARGS + r"\s(?:-[a-zA-Z]*R|--recursive\b))"
_TARGETS_OUTSIDE = r"(?=" + _ARGS + r"\s" + _OUTSIDE + r")"
_INTERPRETER = r"(?:ba|z|da|k|c|tc|fi)?sh|python[\d.]*|perl|ruby|node|php"


def _cmd(names: str) -> str:
    """A command word among `names` (a regex alternation), also when called by path (`/usr/bin/x`) or `\\x`."""
    return _START + _WRAPPERS + r"""(?:[^\s;&|()<>"'`]*/)?\\?(?:""" + names + r""")(?=[\s;&|()<>`"']|$)"""


# `git` followed by its global options (`-C dir`, `-c key=value`, `--no-pager`, …), before the subcommand.
_GIT = _cmd("git") + r"(?:\s+(?:-[Cc]\s+[^\s;&|]+|--?[\w-]+(?:=[^\s;&|]+)?))*\s+"

# The table of refused commands, checked in order; the first rule that matches names the refusal.
# Each reason is written for the agent: what was wrong and what to do instead.
_RULES: tuple[tuple[str, str, str], ...] = (
    # Nothing to run, or a string no shell command contains.
    ("empty_command", r"\A\s*\Z", "the command is empty"),
    ("nul_byte", "\0", "the command contains a NUL byte"),
    # Privilege escalation: the agent runs as an unprivileged user on purpose.
    (
        "privilege_escalation",
        _cmd("sudo|su|doas|pkexec|runuser"),
        "sudo, su and doas are not available; install what the project needs inside the worktree "
        "(a virtualenv, node_modules, a local prefix) instead",
    ),
    # `:(){ :|:& };:` and its named variants.
    ("fork_bomb", r"(\w+|:)\s*\(\)\s*\{[^}]*\1\s*\|\s*\1\s*&", "this is a fork bomb"),
    # Disk and partition tools.
    (
        "disk_tools",
        _cmd(r"mkfs(?:\.\w+)?|mke2fs|mkswap|fdisk|sfdisk|parted|wipefs|blkdiscard"),
        "formatting or partitioning disks is never part of a coding task",
    ),
    # dd writing to a device or anywhere outside the worktree.
    (
        "dd_outside_worktree",
        _cmd("dd") + _ARGS + r"\sof=(?!" + _SAFE_DEV + r")" + _OUTSIDE,
        "dd may only write to files inside the worktree (of=relative/path)",
    ),
    # Turning the machine off.
    (
        "power_control",
        _cmd(
            r"shutdown|reboot|halt|poweroff|telinit|init\s+[06]"
            r"|systemctl\s+(?:poweroff|reboot|halt|kexec|suspend|hibernate)"
        ),
        "shutting down or rebooting the machine is not allowed",
    ),
    # Killing by name or every process: would hit YokeFlow itself and other agents' processes.
    (
        "broad_kill",
        r"(?:" + _cmd("pkill|killall|killall5") + r")|(?:" + _cmd("kill") + _ARGS + r"\s-1\s*(?=[;&|)`\n]|$))",
        "pkill, killall and kill -1 can hit processes that are not yours; kill by process id, and note that "
        "every process a command starts is killed when the command ends anyway",
    ),
    # Executing what was just downloaded: `curl … | sh`, `bash <(curl …)`, `sh -c "$(wget -O- …)"`.
    (
        "download_to_shell",
        r"(?:"
        + _cmd("curl|wget")
        # Up to the next curl/wget at most, so a long chain of them costs linear time, not quadratic.
        + r"(?:(?!\b(?:curl|wget)\b)[^;\n])*?\|\s*"
        + _WRAPPERS
        + r"""(?:[^\s;&|()<>"'`]*/)?(?:"""
        + _INTERPRETER
        + r")(?=[\s;&|)`]|$)(?!\s+-[cmeE]\b))|(?:"
        + _cmd(_INTERPRETER + r"|source|\.|eval")
        + r"""(?:\s+-[^\s;&|]*)*\s+["']?(?:<\(|\$\(|`)\s*(?:[^\s;&|()]*/)?(?:curl|wget)\b)""",
        "running a script straight from the network is not allowed; download it to a file in the worktree, "
        "read it, then run it if it is what you need",
    ),
    # rm -r on anything that is not inside the worktree.
    (
        "recursive_delete_outside",
        _cmd("rm") + _RECURSIVE_RM + _TARGETS_OUTSIDE,
        "recursive rm may only target paths inside the worktree: no absolute paths, ~, $HOME or ..",
    ),
    (
        "find_delete_outside",
        _cmd("find")
        + r"(?:\s+-[HLP])*\s+"
        + _OUTSIDE
        + r"(?="
        + _ARGS
        + r"\s-(?:delete\b|exec(?:dir)?\s+(?:[^\s;&|]*/)?rm\b))",
        "find may only delete inside the worktree; start it from a relative path such as .",
    ),
    (
        "recursive_chmod_outside",
        _cmd("chmod|chown|chgrp") + _RECURSIVE_CHMOD + _TARGETS_OUTSIDE,
        "recursive chmod/chown/chgrp may only target paths inside the worktree",
    ),
    # SSH keys and authorized_keys: reading leaks credentials, writing grants access.
    (
        "ssh_dir",
        r"""(?:~|\$\{?HOME\}?|/root|/home/[^/\s;&|<>"']+)/\.ssh(?=[/""" + _SEP + r"""]|$)""",
        "~/.ssh is off limits",
    ),
    (
        "git_global_config",
        _GIT + r"config\b" + _ARGS + r"\s--(?:global|system)\b",
        "global and system git configuration is off limits; use repository-local settings (git config KEY VALUE)",
    ),
    # Git hooks and config keys that make git run a program: they would run outside the sandbox the next
    # time YokeFlow itself uses git in this worktree.
    (
        "git_hooks",
        r"""(?:^|[/\s"'=])\.git/hooks(?=[/"""
        + _SEP
        + r"""]|$)|"""
        + _GIT
        + r"""config\b"""
        + _ARGS
        + r"""\s["']?(?i:core\.(?:hookspath|fsmonitor|sshcommand|pager|editor|askpass|gitproxy)\b"""
        + r"""|alias\.|filter\.|include(?:if)?\.|diff\.\S*(?:textconv|command)\b|gpg\.program\b|credential\.)""",
        "git hooks and git settings that run programs (core.hooksPath, core.fsmonitor, aliases, filters, "
        "credential helpers, …) are off limits",
    ),
    # Publishing is YokeFlow's job, after review.
    (
        "git_push",
        _GIT + r"""push(?=[\s;&|)`"']|$)""",
        "pushing is done by YokeFlow once the work is reviewed; commit your changes locally instead",
    ),
    # Redirection and tee writing outside the worktree or into .git.
    (
        "write_outside_worktree",
        r"(?:(?<![=\-<>])(?:\d+|&)?>>?\|?\s*|"
        + _cmd("tee")
        + _ARGS
        + r"?\s)(?!"
        + _SAFE_DEV
        + r")(?:"
        + _OUTSIDE
        + r"|"
        + _GITDIR
        + r")",
        "commands may only write to files inside the worktree (relative paths, not inside .git); "
        "/dev/null, /dev/stdout and /dev/stderr are fine",
    ),
    # cp/mv/ln/install/rsync whose destination (the last argument) is outside the worktree or in .git.
    (
        "copy_outside_worktree",
        _cmd("cp|mv|ln|install|rsync") + _ARGS + r"\s(?:" + _OUTSIDE + r"|" + _GITDIR + r")[^\s;&|]*\s*(?=[;&|)`\n]|$)",
        "files may only be copied, moved or linked to destinations inside the worktree (not inside .git)",
    ),
    # Leaving the worktree: every later relative path would then point somewhere else.
    (
        "cd_outside_worktree",
        _cmd("cd|pushd") + r"(?:\s+-[LPe@]+)*\s+" + _OUTSIDE,
        "stay inside the worktree: cd only to relative paths below the current directory",
    ),
)

POLICY: tuple[PolicyRule, ...] = tuple(
    PolicyRule(name, re.compile(pattern, re.MULTILINE), reason) for name, pattern, reason in _RULES
)


def check_command(command: str) -> None:
    """Raises CommandRefused if `command` matches a rule of POLICY."""
    # A backslash-newline continues the line; joining keeps `rm -rf \\\n /` recognisable.
    text = command.replace("\\\n", " ")
    for rule in POLICY:
        if rule.pattern.search(text):
            raise CommandRefused(f"command refused ({rule.name}): {rule.reason}", details={"rule": rule.name})


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
