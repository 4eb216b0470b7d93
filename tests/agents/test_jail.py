"""Attacks on the jail, the way a hostile member or a misled model would try them.

Every command runs as an agent's `run_command` does (`sandbox.run_command` in a task's worktree, with its HOME)
on a world laid out like a real installation: two projects under a projects root, another worktree, a database
file, YokeFlow's `.env`, an SSH key in the worker's home, secrets in the worker's environment and services
listening on the host. Each test checks that the harmful effect did not happen — the secret is absent from what
the command could print, the file is unchanged, the process still runs, the connection failed — not that some
message was printed. Most attacks are written to get past the command guard-rail (variables, python), since
that is a convenience, not the boundary.
"""

from __future__ import annotations

import base64
import os
import shlex
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from apps.agents.jail import JailUnavailable, jail_status
from apps.agents.sandbox import Limits, run_command, scrubbed_env
from apps.agents.tools import ToolContext, coding_tools, tool_execute
from tests.fake_registry import REGISTRY_NAME, registry_serve, wheel_build

pytestmark = pytest.mark.jail

SECRETS = {
    "other_project": "PROJECT-B-SECRET-7b1e",
    "other_worktree": "OTHER-WORKTREE-SECRET-91c2",
    "database": "DATABASE-ROW-SECRET-44aa",
    "dotenv": "DOTENV-SECRET-KEY-0f3d",
    "ssh": "SSH-PRIVATE-KEY-5e6f",
    "outside": "OUTSIDE-FILE-SECRET-2d2d",
    "main_copy": "MAIN-WORKING-COPY-8c8c",
}
ENV_SECRETS = {"ANTHROPIC_API_KEY": "sk-ant-WORKER-ENV-SECRET", "SECRET_KEY": "DJANGO-SECRET-KEY-ENV-1a1a",
               "DATABASE_URL": "postgres://yokeflow:DB-PASSWORD-ENV@127.0.0.1/yokeflow"}


@dataclass
class World:
    root: Path
    worktree: Path
    home: Path
    repo: Path
    other_repo: Path
    outside: Path
    listener_port: int
    sentinel: subprocess.Popen

    def run(self, command: str, **options) -> str:
        """Run as the agent would; returns everything the agent sees (status line and output).

        The command is base64-encoded and `eval`ed, so the guard-rail policy never sees it: what is tested here is
        the jail alone."""
        options.setdefault("timeout", 20)
        hidden = f"eval \"$(echo {base64.b64encode(command.encode()).decode()} | base64 -d)\""
        return run_command(hidden, cwd=self.worktree, env=scrubbed_env(home=str(self.home)), **options).as_text()

    def path(self, key: str) -> Path:
        return {"other_project": self.other_repo / "secret.txt", "other_worktree": self.root / "proj-a" /
                "worktrees" / "other" / "secret.txt", "database": self.root / "db.sqlite3",
                "dotenv": self.root / ".env", "ssh": self.root / "worker-home" / ".ssh" / "id_ed25519",
                "outside": self.outside, "main_copy": self.repo / "main.txt"}[key]


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("installation")
    repo = root / "proj-a" / "repo"
    repo.mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    (repo / "main.txt").write_text("tracked\n")
    _git(repo, "add", "main.txt")
    _git(repo, "commit", "-q", "-m", "init")
    (repo / "main.txt").write_text(SECRETS["main_copy"] + "\n")  # uncommitted, in main's working copy only
    worktree = root / "proj-a" / "worktrees" / "t1"
    _git(repo, "worktree", "add", "-q", "-b", "yokeflow/t1", str(worktree))
    other = root / "proj-a" / "worktrees" / "other"
    _git(repo, "worktree", "add", "-q", "-b", "yokeflow/other", str(other))
    (other / "secret.txt").write_text(SECRETS["other_worktree"])
    home = root / "proj-a" / "homes" / "t1"
    home.mkdir(parents=True)
    other_repo = root / "proj-b" / "repo"
    other_repo.mkdir(parents=True)
    (other_repo / "secret.txt").write_text(SECRETS["other_project"])
    (root / "db.sqlite3").write_text(SECRETS["database"])
    (root / ".env").write_text(f"SECRET_KEY={SECRETS['dotenv']}\n")
    (root / "worker-home" / ".ssh").mkdir(parents=True)
    (root / "worker-home" / ".ssh" / "id_ed25519").write_text(SECRETS["ssh"])
    outside = tmp_path_factory.mktemp("elsewhere") / "outside.txt"
    outside.write_text(SECRETS["outside"])
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    sentinel = subprocess.Popen(["sleep", "600"], start_new_session=True)
    saved = {name: os.environ.get(name) for name in ENV_SECRETS}
    os.environ.update(ENV_SECRETS)
    try:
        yield World(root, worktree, home, repo, other_repo, outside, listener.getsockname()[1], sentinel)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        sentinel.kill()
        sentinel.wait()
        listener.close()


def _leaked(text: str) -> list[str]:
    """The secrets of the world that appear in `text` (none, when the jail held)."""
    return [secret for secret in [*SECRETS.values(), *ENV_SECRETS.values(), "DB-PASSWORD-ENV"] if secret in text]


def _py(code: str) -> str:
    return f"python3 -c {shlex.quote(code)}"


# ------------------------------------------------------------------------------------------ filesystem: reading


READS = {
    "relative traversal": "cat ../../../proj-b/repo/secret.txt ../other/secret.txt ../../../db.sqlite3",
    "absolute path via a variable": "p={path}; cat \"$p\"",
    "python open": _py("print(open('{path}').read())"),
    "symlink to it": "ln -s {path} link && cat link",
    "hard link to it": "ln {path} hl && cat hl",
    "copy it in": "cp {path} copied && cat copied",
    "find the file by name": "find / -name '{name}' 2>/dev/null | xargs cat 2>/dev/null",
    "grep the whole filesystem": "grep -r --text 'SECRET' / 2>/dev/null | head -c 20000",
    "through /proc/1/root": "cat /proc/1/root{path}",
    "through /proc/self/root": "cat /proc/self/root{path}",
    "through the cwd link of pid 1": "cat /proc/1/cwd/../../../{rel}",
    "tar the parent": "tar cf - ../../.. 2>/dev/null | strings | grep SECRET",
}


@pytest.mark.parametrize("secret", sorted(SECRETS))
@pytest.mark.parametrize("attack", sorted(READS))
def test_files_outside_the_worktree_cannot_be_read(world, attack, secret):
    path = world.path(secret)
    rel = os.path.relpath(path, world.worktree)
    output = world.run(READS[attack].format(path=path, name=path.name, rel=rel))
    assert _leaked(output) == []
    assert SECRETS[secret] in path.read_text()  # and it is still there, unchanged


@pytest.mark.parametrize("attack", [
    "cat /proc/1/environ /proc/self/environ /proc/$PPID/environ",
    "for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < $f; done",
    "env; set",
    _py("import os; print(dict(os.environ))"),
])
def test_the_workers_environment_cannot_be_read(world, attack):
    output = world.run(attack)
    assert _leaked(output) == []


def test_host_processes_are_invisible(world):
    output = world.run("for p in /proc/[0-9]*; do echo \"$p $(tr '\\0' ' ' < $p/cmdline)\"; done")
    processes = [line.split(" ", 1) for line in output.splitlines()[1:] if line.startswith("/proc/")]
    # bwrap's init (PID 1), bash and the loop's own children: nothing of the host, the sentinel included.
    assert 1 <= len(processes) <= 5, processes
    assert not any(cmdline.startswith("sleep 600") for _, cmdline in processes)
    assert not any("pytest " in cmdline or "manage.py" in cmdline for _, cmdline in processes)


@pytest.mark.parametrize("path", ["/etc/shadow", "/etc/sudoers", "/etc/ssl/private", "/root/.bash_history",
                                  "/root/.ssh", "/var/lib/postgresql", "/var/run/postgresql", "/home", "/sys/fs/cgroup",
                                  "/etc/postgresql", "/var/log"])
def test_host_system_files_are_absent(world, path):
    output = world.run(f"ls -la {path}; cat {path}")
    assert output.count("No such file or directory") == 2, output


def test_yokeflow_itself_is_invisible(world):
    base = Path(__file__).resolve().parents[2]
    output = world.run(f"ls {base} {base}/yokeflow 2>&1; cat {base}/yokeflow/settings.py 2>&1 | head")
    assert "settings.py" not in output.replace(f"{base}/yokeflow/settings.py", "") and "SECRET_KEY" not in output


# ------------------------------------------------------------------------------------------ filesystem: writing


WRITES = {
    "redirect via a variable": "p={path}; echo pwned > \"$p\"",
    "python write": _py("open('{path}', 'w').write('pwned')"),
    "relative traversal": "echo pwned > {rel}",
    "through a symlink": "ln -sf {path} wl && echo pwned > wl",
    "through /proc/1/root": "echo pwned > /proc/1/root{path}",
    "delete it": _py("import os; os.remove('{path}')"),
    "truncate it": "truncate -s 0 {path}",
    "rename it away": _py("import os; os.rename('{path}', 'stolen')"),
}


@pytest.mark.parametrize("target", ["other_project", "outside", "database", "main_copy"])
@pytest.mark.parametrize("attack", sorted(WRITES))
def test_files_outside_the_worktree_cannot_be_changed(world, attack, target):
    path = world.path(target)
    before = path.read_text()
    world.run(WRITES[attack].format(path=path, rel=os.path.relpath(path, world.worktree)))
    assert path.read_text() == before


@pytest.mark.parametrize("path", ["/usr/bin/python3", "/etc/passwd", "/bin/sh", "/opt/planted", "/planted"])
def test_the_system_is_read_only(world, path):
    before = Path(path).read_bytes() if Path(path).is_file() else None
    world.run(f"p={path}; echo planted > $p; echo planted >> $p")
    after = Path(path).read_bytes() if Path(path).is_file() else None
    assert after == before


def test_tmp_is_private(world):
    name = f"yokeflow-jail-tmp-{os.getpid()}"
    world.run(f"echo x > /tmp/{name}; echo x > /var/tmp/{name}")
    assert not Path("/tmp", name).exists() and not Path("/var/tmp", name).exists()
    assert "x" not in world.run(f"cat /tmp/{name} 2>&1").splitlines()[1:]  # nor seen by the next command


# ------------------------------------------------------------------------------------------ git


def _common_dir(world: World) -> Path:
    return world.repo / ".git"


@pytest.mark.parametrize("attack", [
    "d=$(git rev-parse --git-common-dir); mkdir -p $d/hooks; printf '#!/bin/sh\\ntouch /tmp/x' > $d/hooks/pre-commit",
    "git config core.hooksPath /tmp; git config alias.st '!touch /tmp/x'",
    "d=$(git rev-parse --git-common-dir); echo '[core]' >> $d/config; echo ' fsmonitor = touch /tmp/x' >> $d/config",
    "echo 'gitdir: /tmp/elsewhere' > .git",
    "rm -f .git; mkdir .git",
    "echo hi > new.txt && git add new.txt && git commit -m sneaky",
    "git update-ref refs/heads/main HEAD~0^{tree} 2>&1; git branch -f main yokeflow/t1",
    "echo blob | git hash-object -w --stdin",
    "git tag planted; git stash",
])
def test_the_repository_cannot_be_changed(world, attack):
    common = _common_dir(world)
    before = {p: p.read_bytes() for p in common.rglob("*") if p.is_file() and "index" not in p.name}
    dot_git = (world.worktree / ".git").read_text()
    world.run(attack)
    after = {p: p.read_bytes() for p in common.rglob("*") if p.is_file() and "index" not in p.name}
    assert after == before
    assert (world.worktree / ".git").read_text() == dot_git
    (world.worktree / "new.txt").unlink(missing_ok=True)


def test_git_read_commands_work(world):
    (world.worktree / "readme.txt").write_text("x\n")
    try:
        output = world.run("git status --short && git log --oneline && git diff --stat HEAD")
    finally:
        (world.worktree / "readme.txt").unlink()
    assert output.startswith("exit code 0") and "?? readme.txt" in output and "init" in output


# ------------------------------------------------------------------------------------------ processes


LATE = "sh -c 'sleep 0.8; echo late > {marker}'"


@pytest.mark.parametrize("escape", [
    "setsid -f {late}", "nohup {late} &", "( ( {late} & ) & )", "{late} & disown",
    _py("import os, subprocess\nif os.fork() == 0:\n    os.setsid()\n    subprocess.Popen(['sh', '-c', "
        "'sleep 0.8; echo late > {marker}'])"),
])
def test_nothing_survives_its_command(world, escape):
    marker = world.worktree / f"late-{abs(hash(escape))}.txt"
    late = LATE.format(marker=marker)
    world.run(escape.format(late=late, marker=marker) + "; echo started")
    time.sleep(1.5)
    assert not marker.exists()


def test_nothing_survives_a_timeout(world):
    marker = world.worktree / "late-timeout.txt"
    output = world.run(f"{LATE.format(marker=marker)} & sleep 30", timeout=0.5)
    time.sleep(1.5)
    assert output.startswith("timed out") and not marker.exists()


@pytest.mark.parametrize("attack", [
    "kill -9 {pid}", "kill -STOP {pid}", _py("import os, signal; os.kill({pid}, signal.SIGKILL)"),
    _py("import os, signal; os.kill(-1, signal.SIGKILL)"), "kill -9 -1",
    _py("import ctypes; libc = ctypes.CDLL(None); print(libc.ptrace(16, {pid}, 0, 0))"),
])
def test_host_processes_cannot_be_signalled_or_traced(world, attack):
    world.run(attack.format(pid=world.sentinel.pid) + f"; kill -9 {os.getpid()} 2>/dev/null")
    assert world.sentinel.poll() is None
    state = Path(f"/proc/{world.sentinel.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    assert state in {"S", "R"}  # not stopped (T) nor traced (t)


@pytest.mark.skipif(not jail_status().cgroups and os.geteuid() == 0,
                    reason="as root without writable cgroups, nothing limits processes (RLIMIT_NPROC exempts root)")
def test_a_fork_bomb_is_contained(world):
    bomb = _py("import os, time\nfor _ in range(100000):\n    try:\n        os.fork()\n    except OSError:\n"
               "        time.sleep(0.05)")
    output = world.run(bomb, timeout=3, limits=Limits(processes=64))
    assert output.startswith("timed out") or "exit code" in output
    assert subprocess.run(["true"], timeout=10).returncode == 0  # the host can still start processes
    assert world.run("echo alive").endswith("alive\n")


# ------------------------------------------------------------------------------------------ network


def _connect(host: str, port: int) -> str:
    return _py(f"import socket; socket.create_connection(({host!r}, {port}), timeout=2); print('CONNECTED')")


@pytest.mark.parametrize("target", ["listener", "postgres", "redis", "metadata", "public", "ipv6-loopback",
                                    "host-name"])
def test_no_network_by_default(world, target):
    host, port = {"listener": ("127.0.0.1", world.listener_port), "postgres": ("127.0.0.1", 5432),
                  "redis": ("127.0.0.1", 6379), "metadata": ("169.254.169.254", 80), "public": ("1.1.1.1", 443),
                  "ipv6-loopback": ("::1", 5432), "host-name": ("localhost", world.listener_port)}[target]
    assert "CONNECTED" not in world.run(_connect(host, port))


def test_dns_does_not_resolve(world):
    output = world.run(_py("import socket; print('RESOLVED', socket.getaddrinfo('pypi.org', 443))"))
    assert "RESOLVED" not in output


def test_host_unix_sockets_are_unreachable(world, tmp_path):
    path = world.root / "service.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen()
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind(f"\0yokeflow-test-{os.getpid()}")
    abstract.listen()
    try:
        for address in (str(path), f"\\0yokeflow-test-{os.getpid()}"):
            code = f"import socket; s = socket.socket(socket.AF_UNIX); s.connect('{address}'); print('CONNECTED')"
            assert "CONNECTED" not in world.run(_py(code))
    finally:
        server.close()
        abstract.close()
        path.unlink()


def _fetch(url: str) -> str:
    return _py(f"import urllib.request; print('STATUS', urllib.request.urlopen({url!r}, timeout=5).status)")


@pytest.fixture
def registry(settings, tmp_path):
    with registry_serve(wheel_build(tmp_path / "wheels").parent) as served:
        settings.SANDBOX_REGISTRIES = [REGISTRY_NAME, "localhost", "*.localhost"]
        settings.SANDBOX_EGRESS_PINS = [served.pin]
        yield served


def test_registries_mode_reaches_an_allowed_registry_through_the_proxy(world, registry):
    output = world.run(_fetch(registry.index_url + "tinyrecover/"), network="registries")
    assert "STATUS 200" in output and "/simple/tinyrecover/" in registry.requests


@pytest.mark.parametrize("url", [
    "http://example.org/", "http://127.0.0.1:{port}/simple/", "http://localhost:{port}/simple/",
    "http://169.254.169.254/latest/meta-data/", "http://[::1]:{port}/", "http://0x7f000001:{port}/",
    "http://registry.yokeflow.test.evil.example/",
])
def test_registries_mode_refuses_names_off_the_list_raw_ips_and_loopback(world, registry, url):
    output = world.run(_fetch(url.format(port=registry.port)), network="registries")
    assert "STATUS 200" not in output
    assert registry.requests == []


def test_registries_mode_cannot_bypass_the_proxy(world, registry):
    output = world.run(_connect("127.0.0.1", registry.port) + "; " + _connect("127.0.0.1", 5432),
                       network="registries")
    assert "CONNECTED" not in output and registry.requests == []


def test_pip_installs_from_the_registry_in_registries_mode(world, registry):
    command = (f"python3 -m venv .venv-r && .venv-r/bin/pip install -q --index-url {registry.index_url} "
               f"--trusted-host {REGISTRY_NAME} tinyrecover && .venv-r/bin/python -c 'import tinyrecover; "
               "print(\"VALUE\", tinyrecover.VALUE)'")
    output = world.run(command, network="registries", timeout=120)
    subprocess.run(["rm", "-rf", str(world.worktree / ".venv-r")], check=False)
    assert "VALUE 42" in output, output


def test_open_mode_still_refuses_loopback_and_metadata(world, registry):
    for url in ("http://127.0.0.1:{port}/", "http://localhost:{port}/", "http://169.254.169.254/"):
        assert "STATUS 200" not in world.run(_fetch(url.format(port=registry.port)), network="open")
    assert registry.requests == []


# ------------------------------------------------------------------------------------------ privilege


@pytest.mark.parametrize("attack", [
    _py("import os; os.setuid(0); open('/usr/bin/x', 'w')"),
    "su -c 'touch /usr/planted' root </dev/null", "sudo touch /usr/planted",
    "mount -t tmpfs none /usr 2>&1; touch /usr/planted",
    "unshare -r sh -c 'mount -t tmpfs none /usr; touch /usr/planted'",
    "unshare -rm sh -c 'touch /usr/planted'",
    "chroot / touch /usr/planted",
    _py("import ctypes; print(ctypes.CDLL(None).mount(b'none', b'/usr', b'tmpfs', 0, None)); "
        "open('/usr/planted', 'w')"),
])
def test_no_way_to_privilege(world, attack):
    world.run(attack)
    assert not Path("/usr/planted").exists() and not Path("/usr/bin/x").exists()


def test_the_command_runs_unprivileged(world):
    output = world.run("id -u; grep CapEff /proc/self/status; hostname")
    lines = output.splitlines()
    assert lines[1] == "1000" and lines[2].split()[1] == "0000000000000000" and lines[3] == "yokeflow-jail"


def test_no_devices_but_the_harmless(world):
    devices = set(world.run("ls /dev").splitlines()[1:])
    assert not {d for d in devices if d.startswith(("sd", "nvme", "vd", "mem", "kmem", "port", "tty", "kvm"))
                and d not in {"tty"}}


# ------------------------------------------------------------------------------------------ resources


def test_memory_is_bounded(world):
    output = world.run(_py("x = bytearray(8 * 1024**3); print('ALLOCATED')"),
                       limits=Limits(memory_bytes=512 * 1024**2))
    assert "ALLOCATED" not in output


def test_file_size_is_bounded(world):
    world.run("head -c 20000000 /dev/zero > big.bin", limits=Limits(file_size_bytes=1024**2))
    size = (world.worktree / "big.bin").stat().st_size
    (world.worktree / "big.bin").unlink()
    assert size <= 1024**2


def test_tmp_is_bounded(world):
    output = world.run("head -c 1200M /dev/zero > /tmp/fill; echo rc=$?", timeout=60)
    assert "rc=0" not in output


def test_cpu_time_is_bounded(world):
    started = time.monotonic()
    output = world.run(_py("while True: pass"), limits=Limits(cpu_seconds=1), timeout=30)
    assert time.monotonic() - started < 15 and ("SIGXCPU" in output or "SIGKILL" in output or "137" in output
                                                or "152" in output)


# ------------------------------------------------------------------------------------------ the file tools


@pytest.fixture
def tools(world) -> ToolContext:
    return ToolContext(session=None, workdir=world.worktree, home=world.home, command_timeout=10)


def _tool(context: ToolContext, name: str, **arguments):
    return tool_execute(coding_tools(), context, name, arguments)


@pytest.mark.parametrize("name", ["read_file", "edit_file", "write_file"])
def test_file_tools_refuse_a_hard_link_to_a_file_outside(world, tools, name):
    link = world.worktree / "hard.txt"
    os.link(world.outside, link)
    try:
        arguments = {"read_file": {}, "edit_file": {"old_string": "SECRET", "new_string": "x"},
                     "write_file": {"content": "pwned"}}[name]
        result = _tool(tools, name, path="hard.txt", **arguments)
    finally:
        link.unlink()
    assert result.is_error and "hard link" in result.content
    assert world.outside.read_text() == SECRETS["outside"]
    assert _leaked(result.content) == []


def test_file_tools_refuse_a_symlink_planted_by_a_command(world, tools):
    world.run(f"ln -s {world.outside} planted.txt")
    try:
        read = _tool(tools, "read_file", path="planted.txt")
        write = _tool(tools, "write_file", path="planted.txt", content="pwned")
    finally:
        (world.worktree / "planted.txt").unlink()
    assert read.is_error and write.is_error
    assert _leaked(read.content) == []
    assert world.outside.read_text() == SECRETS["outside"]


def test_search_skips_hard_links(world, tools):
    link = world.worktree / "hard-search.txt"
    os.link(world.outside, link)
    try:
        result = _tool(tools, "search_files", pattern="SECRET")
    finally:
        link.unlink()
    assert _leaked(result.content) == []


# ------------------------------------------------------------------------------------------ the mode switch


def test_without_the_jail_commands_are_refused_with_the_fix(world, settings):
    settings.SANDBOX_BWRAP = "/nonexistent/bwrap"
    try:
        jail_status(refresh=True)
        with pytest.raises(JailUnavailable) as refused:
            world.run("echo hi")
    finally:
        settings.SANDBOX_BWRAP = ""
        jail_status(refresh=True)
    assert refused.value.code == "jail_unavailable" and "apt-get install bubblewrap" in str(refused.value)



def test_an_agents_run_command_uses_the_sessions_network_mode(world, registry):
    fetch = _fetch(registry.index_url + "tinyrecover/")
    closed = ToolContext(session=None, workdir=world.worktree, home=world.home, command_timeout=20)
    assert "STATUS 200" not in _tool(closed, "run_command", command=fetch).content
    assert registry.requests == []
    opened = ToolContext(session=None, workdir=world.worktree, home=world.home, command_timeout=20,
                         network="registries")
    assert "STATUS 200" in _tool(opened, "run_command", command=fetch).content
