"""The jail: every command YokeFlow runs on someone's behalf runs inside bubblewrap.

What a jailed command sees (see README "Security model"):

- new user, PID, IPC, UTS, cgroup, network and mount namespaces; an unprivileged uid inside with every capability
  dropped; `--die-with-parent` and `--new-session`; bwrap's own init is PID 1, so when the command ends, times
  out or is cancelled, every process it started dies with the namespace (`setsid -f` survives nothing);
- a root that is an empty tmpfs, remounted read-only: the system directories a toolchain needs (`/usr` and the
  merged-usr links), a synthesized `/etc` (its own passwd, group and hosts plus the host's certificates, linker
  cache and alternatives), its own `/proc` and a minimal `/dev`, a private `/tmp`;
- the working directory (a task's worktree, or main's working copy for acceptance tests on main) and a HOME kept
  per worktree, both writable, and nothing else of the host: no other worktree or project, no `PROJECTS_ROOT`,
  no database file, no settings, no sockets;
- git's files read-only: the worktree's `.git` and the repository's git directory are bound read-only over
  themselves, so `git status/diff/log` work and refs, objects, hooks and config cannot be written;
- no network at all (only its own loopback); a project's `registries` or `open` mode reaches the outside only
  through YokeFlow's allow-listing proxy (`apps/agents/egress.py`);
- rlimits (CPU, address space, file size, processes, no core files) and, where the host lets YokeFlow create
  cgroups, a cgroup per command with a process and memory ceiling (this is what limits processes when the
  worker runs as root, since the kernel exempts root from RLIMIT_NPROC).

`SANDBOX=policy` turns the jail off (an explicit, unsafe operator choice that every page, `doctor`, `/health` and
the log warn about); with the default `SANDBOX=jail` and no working bubblewrap, commands are refused with
`JailUnavailable`, which says how to fix it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from apps.agents.cgroups import Cgroups, cgroup_parents
from apps.core.errors import SandboxError

__all__ = ["JAIL_GID", "JAIL_UID", "JailSpec", "JailStatus", "JailUnavailable", "jail_argv", "jail_status",
           "jailed_popen", "unsafe_mode"]

log = logging.getLogger(__name__)

JAIL_UID = JAIL_GID = 1000  # inside the user namespace; outside it is always the worker's own uid
JAIL_USER = "agent"
TMP_BYTES = 1024**3  # the private /tmp
SMALL_TMP_BYTES = 64 * 1024**2  # /var/tmp and /run
HOSTNAME = "yokeflow-jail"
STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INSTALL_HINT = ("install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap) and allow unprivileged user "
                "namespaces (sysctl kernel.unprivileged_userns_clone=1; in a container: see README "
                "\"Security model\"), or set SANDBOX=policy to run without the jail (unsafe)")

# Host directories a toolchain reads: bound read-only when they are directories, recreated when they are links.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Host files and directories under /etc that carry no secrets and that programs need.
# (Certificates only: /etc/ssl/private holds keys, readable when the worker runs as root.)
ETC_SHARED = ("alternatives", "ca-certificates", "ca-certificates.conf", "ssl/certs", "ssl/openssl.cnf",
              "pki/tls/certs", "pki/ca-trust/extracted", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime",
              "timezone", "mime.types", "protocols", "services", "magic", "bash.bashrc", "profile", "inputrc",
              "gitattributes")
ETC_SHARED_GLOBS = ("python3*",)
RELAY = Path(__file__).with_name("egress_relay.py")
# Where a worktree's dev service (in its own jail) exports its port as `<port>.sock`; the worktree's other jails
# import every port found there, so `curl localhost:$PORT` in an agent's command reaches the service.
SERVICE_PORTS_DIR = ".yokeflow/ports"
RELAY_IN_JAIL = "/run/yokeflow/relay.py"


class JailUnavailable(SandboxError):
    code = "jail_unavailable"


@dataclass(frozen=True)
class JailSpec:
    """Where a command runs and what it may write. `workdir` is its cwd; `writable` are further directories."""

    workdir: Path
    writable: tuple[Path, ...] = ()
    network: str = "none"  # none | registries | open (see apps/agents/egress.py)
    # Extra bwrap arguments placed before the command (sockets bound in), and the relay's port forwards
    # (`import:PORT=SOCKET`, `export:SOCKET=PORT`, see egress_relay.py) the command runs under.
    extra_args: tuple[str, ...] = ()
    forwards: tuple[str, ...] = ()


@dataclass(frozen=True)
class JailStatus:
    mode: str  # "jail" or "policy"
    available: bool
    version: str
    reason: str
    cgroups: tuple[str, ...] = field(default_factory=tuple)  # controllers limited through cgroups

    @property
    def summary(self) -> str:
        if self.mode == "policy":
            return "UNSAFE: SANDBOX=policy, commands run without the jail (guard-rail policy only)"
        if not self.available:
            return f"unavailable: {self.reason}; {INSTALL_HINT}"
        limits = f"cgroups ({', '.join(self.cgroups)})" if self.cgroups else "rlimits only"
        return f"bubblewrap {self.version}, limits: {limits}"


def unsafe_mode() -> bool:
    return settings.SANDBOX == "policy"


def bwrap_path() -> str | None:
    return settings.SANDBOX_BWRAP or shutil.which("bwrap")


# ----------------------------------------------------------------------------------------------- status


_status_lock = threading.Lock()
_status: JailStatus | None = None


def jail_status(*, refresh: bool = False) -> JailStatus:
    """Whether the jail works here: bwrap present and a probe command runs in it. Probed once per process."""
    global _status
    with _status_lock:
        if _status is None or refresh or _status.mode != settings.SANDBOX:
            _status = _probe()
        return _status


def _probe() -> JailStatus:
    mode = settings.SANDBOX
    binary = bwrap_path()
    if binary is None:
        return JailStatus(mode, False, "", "bubblewrap (bwrap) is not installed")
    version = _bwrap_version(binary)
    with tempfile.TemporaryDirectory(prefix="yokeflow-jail-probe-") as probe:
        argv = jail_argv(JailSpec(workdir=Path(probe)), ["/bin/sh", "-c", "exit 0"], binary=binary)
        try:
            done = subprocess.run(argv, capture_output=True, timeout=30, env={"PATH": STANDARD_PATH})
        except (OSError, subprocess.SubprocessError) as exc:
            return JailStatus(mode, False, version, f"bubblewrap could not start: {exc}")
    if done.returncode != 0:
        error = done.stderr.decode(errors="replace").strip().splitlines()
        return JailStatus(mode, False, version, f"bubblewrap failed: {error[-1] if error else done.returncode}")
    return JailStatus(mode, True, version, "", tuple(sorted(cgroup_parents())))


def _bwrap_version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.strip().removeprefix("bubblewrap").strip() or "unknown"


def jail_check() -> tuple[bool, str]:
    """The health check: ok when commands run jailed; the unsafe mode is reported as a failure, loudly."""
    status = jail_status()
    return status.mode == "jail" and status.available, f"{status.mode}: {status.summary}"


def require_jail() -> JailStatus | None:
    """The jail status when commands must run jailed, None in the unsafe policy mode; raises when it cannot run."""
    if unsafe_mode():
        return None
    status = jail_status()
    if not status.available:
        raise JailUnavailable(f"the command jail is unavailable: {status.reason}; {INSTALL_HINT}",
                              recoverable=False)
    return status


# ----------------------------------------------------------------------------------------------- argv


_ETC_FILES = {
    "passwd": f"root:x:0:0::/root:/usr/sbin/nologin\n{JAIL_USER}:x:{JAIL_UID}:{JAIL_GID}::/home/agent:/bin/bash\n"
              "nobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n",
    "group": f"root:x:0:\n{JAIL_USER}:x:{JAIL_GID}:\nnogroup:x:65534:\n",
    "hosts": f"127.0.0.1 localhost {HOSTNAME}\n::1 localhost ip6-localhost\n",
    "hostname": f"{HOSTNAME}\n",
    "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
    "resolv.conf": "# no DNS in the jail: use the HTTP(S) proxy in HTTPS_PROXY when the network mode allows\n",
}


@functools.cache
def _etc_dir() -> Path:
    """The synthesized files of the jail's /etc, written once under VAR_DIR (named by their content)."""
    digest = hashlib.sha256(repr(sorted(_ETC_FILES.items())).encode()).hexdigest()[:16]
    path = Path(settings.VAR_DIR) / "jail" / f"etc-{digest}"
    if all((path / name).is_file() and (path / name).read_text() == text for name, text in _ETC_FILES.items()):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="etc-", dir=path.parent))
    for name, text in _ETC_FILES.items():
        (staging / name).write_text(text)
        (staging / name).chmod(0o644)
    staging.chmod(0o755)
    if path.exists():  # not what it should be: replaced
        shutil.rmtree(path, ignore_errors=True)
    try:
        staging.rename(path)  # atomic: another process may have done the same meanwhile
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def _system_args() -> list[str]:
    args: list[str] = []
    for name in SYSTEM_DIRS:
        if os.path.islink(name):
            args += ["--symlink", os.readlink(name), name]
        elif os.path.isdir(name):
            args += ["--ro-bind", name, name]
    # An interpreter outside /usr (pyenv, a custom prefix) for YokeFlow's helpers inside the jail, read-only.
    base = os.path.realpath(sys.base_prefix)
    if not any(base == d or base.startswith(d + "/") for d in SYSTEM_DIRS):
        args += ["--ro-bind", base, base]
    for extra in settings.SANDBOX_READONLY_PATHS:  # an operator's toolchain outside /usr, e.g. /opt/jdk
        if os.path.isabs(extra) and os.path.exists(extra):
            args += ["--ro-bind", extra, extra]
    args += ["--dir", "/etc"]
    for name in sorted(os.listdir(_etc_dir())):
        args += ["--ro-bind", str(_etc_dir() / name), f"/etc/{name}"]
    shared = [Path("/etc", name) for name in ETC_SHARED]
    shared += [p for pattern in ETC_SHARED_GLOBS for p in sorted(Path("/etc").glob(pattern))]
    for path in shared:
        if path.exists():
            args += ["--ro-bind", str(path), str(path)]
    return args


@functools.cache
def _supports(binary: str, option: str) -> bool:
    try:
        return option in subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return False


def _git_dirs(workdir: Path) -> list[Path]:
    """Git's files of a working directory, to be bound read-only: its `.git` and, for a worktree, the repository's."""
    dot_git = workdir / ".git"
    if dot_git.is_dir() and not dot_git.is_symlink():
        return [dot_git]
    if not dot_git.is_file():
        return []
    match = re.match(r"gitdir:\s*(.+)", dot_git.read_text(errors="replace").strip())
    if not match:
        return [dot_git]
    gitdir = (workdir / match.group(1)).resolve()
    common = gitdir
    with contextlib.suppress(OSError):
        common = (gitdir / (gitdir / "commondir").read_text().strip()).resolve()
    return [dot_git, common if gitdir.is_relative_to(common) else gitdir]


def jail_argv(spec: JailSpec, command: Sequence[str], *, binary: str | None = None) -> list[str]:
    """The bwrap command line that runs `command` jailed as `spec` says."""
    workdir = Path(spec.workdir).resolve()
    binary = binary or bwrap_path() or "bwrap"
    args = [binary, "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--uid", str(JAIL_UID), "--gid", str(JAIL_GID), "--hostname", HOSTNAME]
    if _supports(binary, "--disable-userns"):  # bubblewrap >= 0.8: no nested user namespaces inside
        args += ["--disable-userns"]
    args += _system_args()
    args += ["--proc", "/proc", "--dev", "/dev"]
    for directory, size in (("/tmp", TMP_BYTES), ("/var/tmp", SMALL_TMP_BYTES), ("/run", SMALL_TMP_BYTES)):
        # A tmpfs is memory: bounded (bubblewrap >= 0.8), so /tmp cannot fill the host's RAM.
        args += [*(["--size", str(size)] if _supports(binary, "--size") else []), "--tmpfs", directory]
    for real in dict.fromkeys(str(Path(path).resolve()) for path in (workdir, *spec.writable)):
        args += ["--bind", real, real]
    for path in _git_dirs(workdir):
        args += ["--ro-bind", str(path), str(path)]
    if spec.forwards:
        args += ["--ro-bind", str(RELAY), RELAY_IN_JAIL]
        command = [os.path.realpath(getattr(sys, "_base_executable", sys.executable)), "-I", RELAY_IN_JAIL,
                   *spec.forwards, "--", *command]
    args += [*spec.extra_args, "--chdir", str(workdir), "--remount-ro", "/", "--", *command]
    return args


def service_forwards(workdir: Path) -> tuple[str, ...]:
    """Relay imports for the ports the worktree's dev service exports (sockets, not links, named `<port>.sock`)."""
    directory = Path(workdir) / SERVICE_PORTS_DIR
    forwards = []
    with contextlib.suppress(OSError):
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            port = entry.name.removesuffix(".sock")
            if entry.name.endswith(".sock") and port.isdigit() and 1024 <= int(port) <= 65535 \
                    and _is_socket(entry.path) and _accepts(entry.path):
                forwards.append(f"import:{int(port)}={Path(entry.path).resolve()}")
    return tuple(forwards)


def _accepts(path: str) -> bool:
    """A stale socket (its jail is gone) is not imported: the command should see "connection refused"."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def _is_socket(path: str) -> bool:
    with contextlib.suppress(OSError):
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    return False


# ----------------------------------------------------------------------------------------------- spawning


def jailed_popen(
    command: str, spec: JailSpec, *, env: Mapping[str, str], preexec: Callable[[], None] | None = None,
    processes: int = 512, memory_bytes: int = 4 * 1024**3, wait_cleanup: bool = False, **popen: object,
) -> subprocess.Popen:
    """Starts `bash -c command` jailed (or, in the unsafe policy mode, as a plain process).

    The process is the leader of a new process group (bwrap, outside the namespaces): killing that group kills
    bwrap, and with it (die-with-parent, PID-namespace init) everything inside. Its cgroups, if any, are removed by
    `jail_cleanup(proc)` once it has exited, or (`wait_cleanup`, for a process that outlives the caller) by a
    thread that waits for it.
    """
    status = require_jail()
    if status is None:  # SANDBOX=policy: unsafe, but explicitly chosen by the operator
        argv = ["/bin/bash", "-c", command]
        cgroups = None
    else:
        argv = jail_argv(spec, ["/bin/bash", "-c", command])
        cgroups = Cgroups(processes=processes, memory_bytes=memory_bytes) if status.cgroups else None
    jail_env = dict(env)
    if status is not None:
        jail_env["PATH"] = _jail_path(jail_env.get("PATH", ""), spec)

    def setup() -> None:
        if cgroups is not None:
            cgroups.enter()
        if preexec is not None:
            preexec()

    try:
        proc = subprocess.Popen(argv, cwd=spec.workdir, env=jail_env, start_new_session=True, preexec_fn=setup,
                                **popen)  # type: ignore[call-overload]
    except BaseException:
        if cgroups is not None:
            cgroups.close()
        raise
    _cgroups_of[proc.pid] = cgroups
    if wait_cleanup:
        threading.Thread(target=lambda: (proc.wait(), jail_cleanup(proc)), name="jail-cleanup", daemon=True).start()
    return proc


_cgroups_of: dict[int, Cgroups | None] = {}


def jail_cleanup(proc: subprocess.Popen) -> None:
    """Remove the cgroups of a jailed process that has exited (killing anything left in them first)."""
    cgroups = _cgroups_of.pop(proc.pid, None)
    if cgroups is not None:
        cgroups.close()


def _jail_path(path: str, spec: JailSpec) -> str:
    """PATH inside the jail: the entries that exist there (the worktree's, HOME's, the system's) and the standard."""
    visible = [Path(spec.workdir).resolve(), *(Path(p).resolve() for p in spec.writable)]
    kept = [entry for entry in path.split(os.pathsep)
            if entry and any(Path(entry).is_relative_to(v) for v in visible)]
    return os.pathsep.join([*kept, STANDARD_PATH])
