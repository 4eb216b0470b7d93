"""`yokeflow sandbox check`: escape probes run in the jail on this worker, each judged by its effect.

Every probe tries one way out (a file outside, a host service, the worker's environment, a surviving process,
root, the repository's git files, the egress proxy's policy) in a scratch installation made for the check, then
looks at what happened outside: the file is unchanged, the canary is absent, the marker was never written. A probe
that finds its effect is an escape; the check exits non-zero on any.
"""

from __future__ import annotations

import base64
import os
import secrets
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from apps.agents.egress import EgressRefused, egress_check
from apps.agents.jail import jail_status
from apps.agents.sandbox import run_command, scrubbed_env

__all__ = ["Probe", "probes_run"]


@dataclass(frozen=True)
class Probe:
    name: str
    expected: str
    observed: str
    escaped: bool


@dataclass
class _Scratch:
    root: Path
    worktree: Path
    home: Path
    outside: Path
    canary: str
    port: int

    def run(self, command: str) -> str:
        hidden = f"eval \"$(echo {base64.b64encode(command.encode()).decode()} | base64 -d)\""  # past the guard-rail
        return run_command(hidden, cwd=self.worktree, env=scrubbed_env(home=str(self.home)), timeout=20).as_text()


def _scratch(root: Path, port: int) -> _Scratch:
    repo = root / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=check", "-c", "user.email=check@yokeflow", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "check"], cwd=repo, check=True)
    worktree = root / "worktrees" / "t1"
    subprocess.run([*git, "worktree", "add", "-q", "-b", "check", str(worktree)], cwd=repo, check=True)
    home = root / "homes" / "t1"
    home.mkdir(parents=True)
    canary = f"CANARY-{secrets.token_hex(8)}"
    outside = root / "outside.txt"
    outside.write_text(canary)
    return _Scratch(root, worktree, home, outside, canary, port)


def _read_outside(s: _Scratch) -> Probe:
    seen = s.run(f"cat {s.outside}; python3 -c \"print(open('{s.outside}').read())\"; cat /proc/1/root{s.outside}")
    return Probe("read a file outside the worktree", "not readable", _says(s.canary not in seen, "not readable",
                 "READ"), s.canary in seen)


def _write_outside(s: _Scratch) -> Probe:
    s.run(f"echo pwned > {s.outside}; ln -sf {s.outside} l && echo pwned > l")
    changed = s.outside.read_text() != s.canary
    return Probe("write a file outside the worktree", "unchanged", _says(not changed, "unchanged", "CHANGED"), changed)


def _environment(s: _Scratch) -> Probe:
    os.environ["YOKEFLOW_CHECK_SECRET_TOKEN"] = s.canary
    try:
        seen = s.run("env; cat /proc/1/environ /proc/self/environ; for f in /proc/[0-9]*/environ; do cat $f; done")
    finally:
        os.environ.pop("YOKEFLOW_CHECK_SECRET_TOKEN", None)
    return Probe("read the worker's environment", "absent", _says(s.canary not in seen, "absent", "LEAKED"),
                 s.canary in seen)


def _host_service(s: _Scratch) -> Probe:
    seen = s.run(f"python3 -c \"import socket; socket.create_connection(('127.0.0.1', {s.port}), timeout=2); "
                 "print('CONNECTED')\"")
    return Probe("connect to a service on the host's loopback", "refused",
                 _says("CONNECTED" not in seen, "refused", "CONNECTED"), "CONNECTED" in seen)


def _metadata(s: _Scratch) -> Probe:
    seen = s.run("python3 -c \"import socket; socket.create_connection(('169.254.169.254', 80), timeout=2); "
                 "print('CONNECTED')\"")
    return Probe("connect to the cloud metadata address", "unreachable",
                 _says("CONNECTED" not in seen, "unreachable", "CONNECTED"), "CONNECTED" in seen)


def _survivor(s: _Scratch) -> Probe:
    marker = s.worktree / "late.txt"
    s.run(f"setsid -f sh -c 'sleep 0.5; echo late > {marker}'; nohup sh -c 'sleep 0.5; echo late > {marker}' &")
    time.sleep(1.2)
    survived = marker.exists()
    return Probe("leave a process behind (setsid, nohup)", "killed with the command",
                 _says(not survived, "killed with the command", "SURVIVED"), survived)


def _privilege(s: _Scratch) -> Probe:
    seen = s.run("id -u; grep CapEff /proc/self/status; unshare -r id -u 2>&1; echo x > /usr/yokeflow-check 2>&1")
    lines = seen.splitlines()[1:]
    root = bool(lines) and lines[0].strip() == "0"
    caps = any(line.startswith("CapEff") and line.split()[1].strip("0") for line in lines)
    planted = Path("/usr/yokeflow-check").exists()
    escaped = root or caps or planted
    return Probe("gain privilege (root, capabilities, nested namespaces, write /usr)", "unprivileged",
                 _says(not escaped, f"uid {lines[0].strip() if lines else '?'}, no capabilities", "PRIVILEGED"),
                 escaped)


def _git(s: _Scratch) -> Probe:
    config = s.root / "repo" / ".git" / "config"
    before = config.read_text()
    s.run("git config core.fsmonitor 'touch /tmp/x'; d=$(git rev-parse --git-common-dir); mkdir -p $d/hooks; "
          "echo x > $d/hooks/pre-commit; git commit -q --allow-empty -m x")
    hook = (s.root / "repo" / ".git" / "hooks" / "pre-commit").exists()
    changed = config.read_text() != before or hook
    return Probe("write the repository's git config, hooks or refs", "read-only",
                 _says(not changed, "read-only", "WRITTEN"), changed)


def _egress_policy(_: _Scratch) -> Probe:
    allowed = []
    for mode, host, port in (("registries", "127.0.0.1", 80), ("registries", "localhost", 443),
                             ("open", "169.254.169.254", 80), ("registries", "not-a-registry.example", 443)):
        try:
            egress_check(mode, host, port)
            allowed.append(f"{mode}:{host}")
        except EgressRefused:
            pass
    return Probe("egress proxy: raw IPs, loopback, metadata, names off the list", "refused",
                 _says(not allowed, "refused", f"ALLOWED {', '.join(allowed)}"), bool(allowed))


def _says(ok: bool, good: str, bad: str) -> str:
    return good if ok else bad


PROBES: tuple[Callable[[_Scratch], Probe], ...] = (
    _read_outside, _write_outside, _environment, _host_service, _metadata, _survivor, _privilege, _git,
    _egress_policy,
)


def probes_run() -> list[Probe]:
    """Run every probe in a scratch installation; raises JailUnavailable when there is no jail to check."""
    jail_status(refresh=True)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        with tempfile.TemporaryDirectory(prefix="yokeflow-sandbox-check-") as directory:
            scratch = _scratch(Path(directory), listener.getsockname()[1])
            return [probe(scratch) for probe in PROBES]
    finally:
        listener.close()
