"""Automatic recovery against real processes, sockets, a real virtualenv and a wheel built here."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from apps.agents.sandbox import run_command
from apps.agents.tools.shell import SESSION_MARKER
from apps.interventions.models import InterventionAction, PausedSession
from apps.interventions.recovery import dev_service_stop, recovery_attempt
from tests.fake_registry import REGISTRY_NAME, registry_serve, wheel_build

LISTENER = (
    "import socket, time\n"
    "s = socket.socket()\n"
    "s.bind(('127.0.0.1', 0))\n"
    "s.listen()\n"
    "print(s.getsockname()[1], flush=True)\n"
    "time.sleep(60)\n"
)
# python3 of the system: the jail sees the system's directories, not YokeFlow's virtualenv.
DEV_SERVICE = (
    "python3 -c \"import socket, os, time; s = socket.socket(); "
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
    "s.bind(('127.0.0.1', int(os.environ['PORT']))); s.listen(); time.sleep(60)\""
)


@pytest.fixture
def workdir(pause: PausedSession, tmp_path: Path) -> Path:
    """The paused session's worktree, moved to a fresh directory so nothing lands in the project's repository."""
    path = tmp_path / "worktree"
    path.mkdir()
    pause.session.workdir = str(path)
    pause.session.save(update_fields=["workdir"])
    return path


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen]]:
    """Processes a test starts; each is killed with its process group afterwards, whatever the test did."""
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
def listener(started: list[subprocess.Popen]) -> Callable[[dict[str, str]], tuple[subprocess.Popen, int]]:
    """Starts a process listening on a free port with `env` added to ours; returns it and the port."""

    def start(env: dict[str, str]) -> tuple[subprocess.Popen, int]:
        base = {name: value for name, value in os.environ.items() if name != SESSION_MARKER}
        proc = subprocess.Popen([sys.executable, "-c", LISTENER], env={**base, **env}, stdout=subprocess.PIPE,
                                text=True, start_new_session=True)
        started.append(proc)
        assert proc.stdout is not None
        return proc, int(proc.stdout.readline())

    return start


@pytest.fixture
def dev_service(pause: PausedSession, workdir: Path) -> Iterator[Callable[[str], None]]:
    """Sets the project's dev service command; whatever recovery started is stopped afterwards."""

    def declare(command: str) -> None:
        pause.project.dev_service = command
        pause.project.save(update_fields=["dev_service"])

    yield declare
    dev_service_stop(workdir=workdir)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _block(pause: PausedSession, **info: object) -> None:
    pause.blocker_info = {"match": "test", "command": "test", "output_tail": "", **info}
    pause.save(update_fields=["blocker_info"])


# --------------------------------------------------------------------------------------------------
# free_port
# --------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_frees_a_port_held_by_the_sessions_own_process(pause, listener):
    proc, port = listener({SESSION_MARKER: str(pause.session_id)})
    _block(pause, pattern="address_in_use", port=port)

    action = recovery_attempt(pause=pause)

    assert action.action_type == InterventionAction.Type.RECOVERY
    assert action.action_status == InterventionAction.Status.OK, action.action_details
    assert [entry["pid"] for entry in action.action_details["stopped"]] == [proc.pid]
    assert proc.wait(timeout=5) is not None
    assert not _accepts(port)


@pytest.mark.django_db
@pytest.mark.parametrize("marker", ["none", "other_session"])
def test_it_refuses_to_stop_a_listener_that_is_not_the_sessions(pause, listener, marker):
    env = {SESSION_MARKER: str(pause.session_id + 1000)} if marker == "other_session" else {}
    proc, port = listener(env)
    _block(pause, pattern="address_in_use", port=port)

    action = recovery_attempt(pause=pause)

    assert action.action_status == InterventionAction.Status.REFUSED
    [refused] = action.action_details["listeners"]
    assert refused["pid"] == proc.pid and refused["name"]
    assert proc.poll() is None and _accepts(port)


@pytest.mark.django_db
def test_a_port_nobody_listens_on_counts_as_freed(pause):
    _block(pause, pattern="address_in_use", port=_free_port())

    action = recovery_attempt(pause=pause)

    assert action.action_status == InterventionAction.Status.OK
    assert action.action_details["message"] == "port already free"


# --------------------------------------------------------------------------------------------------
# pip_install
# --------------------------------------------------------------------------------------------------


@pytest.mark.jail
@pytest.mark.django_db
def test_it_installs_an_allowlisted_module_into_the_worktree_venv_from_a_registry(pause, workdir, tmp_path, settings):
    wheel_dir = wheel_build(tmp_path / "wheels").parent
    subprocess.run([sys.executable, "-m", "venv", str(workdir / ".venv")], check=True, timeout=120)
    pause.project.network = "registries"
    pause.project.save(update_fields=["network"])
    _block(pause, pattern="missing_module", module="tinyrecover.sub")

    with registry_serve(wheel_dir) as registry:
        settings.RECOVERY_PIP_ALLOWLIST = ["TinyRecover"]
        settings.SANDBOX_REGISTRIES = [REGISTRY_NAME]
        settings.SANDBOX_EGRESS_PINS = [registry.pin]
        settings.RECOVERY_PIP_ARGS = ["--index-url", registry.index_url, "--trusted-host", REGISTRY_NAME]
        action = recovery_attempt(pause=pause)

    assert action.action_status == InterventionAction.Status.OK, action.action_details
    assert action.action_details["package"] == "TinyRecover"
    assert "/simple/tinyrecover/" in registry.requests  # through the jail's proxy, to the pinned registry
    check = subprocess.run([str(workdir / ".venv/bin/python"), "-c", "import tinyrecover; print(tinyrecover.VALUE)"],
                           capture_output=True, text=True, timeout=30)
    assert check.stdout.strip() == "42"


@pytest.mark.django_db
def test_without_network_the_install_fails_and_nothing_is_installed(pause, workdir, tmp_path, settings):
    wheel_dir = wheel_build(tmp_path / "wheels").parent
    subprocess.run([sys.executable, "-m", "venv", str(workdir / ".venv")], check=True, timeout=120)
    _block(pause, pattern="missing_module", module="tinyrecover")

    with registry_serve(wheel_dir) as registry:
        settings.RECOVERY_PIP_ALLOWLIST = ["TinyRecover"]
        settings.SANDBOX_REGISTRIES = [REGISTRY_NAME]
        settings.SANDBOX_EGRESS_PINS = [registry.pin]
        settings.RECOVERY_PIP_ARGS = ["--index-url", registry.index_url, "--trusted-host", REGISTRY_NAME,
                                      "--retries", "0", "--timeout", "2"]
        action = recovery_attempt(pause=pause)  # the project's network mode is the default, none

    assert action.action_status == InterventionAction.Status.FAILED
    assert registry.requests == []
    assert not list((workdir / ".venv").glob("lib/python*/site-packages/tinyrecover"))


@pytest.mark.django_db
def test_it_refuses_a_module_that_is_not_allowlisted(pause, workdir, settings):
    settings.RECOVERY_PIP_ALLOWLIST = ["requests"]
    _block(pause, pattern="missing_module", module="evilpkg")

    action = recovery_attempt(pause=pause)

    assert action.action_status == InterventionAction.Status.REFUSED
    assert "RECOVERY_PIP_ALLOWLIST" in action.action_details["message"]


@pytest.mark.django_db
def test_it_skips_the_install_without_a_venv_in_the_worktree(pause, workdir, settings):
    settings.RECOVERY_PIP_ALLOWLIST = ["PyYAML"]  # `yaml` is provided by pyyaml
    _block(pause, pattern="missing_module", module="yaml")

    action = recovery_attempt(pause=pause)

    assert action.action_status == InterventionAction.Status.SKIPPED
    assert action.action_details["package"] == "PyYAML"
    assert "no virtualenv in the worktree" in action.action_details["message"]


# --------------------------------------------------------------------------------------------------
# restart_service
# --------------------------------------------------------------------------------------------------


@pytest.mark.jail
@pytest.mark.django_db
def test_it_restarts_the_dev_service_until_its_port_accepts(pause, workdir, dev_service):
    dev_service(DEV_SERVICE)
    port = _free_port()
    _block(pause, pattern="service_refused", port=port)

    action = recovery_attempt(pause=pause)

    assert action.action_status == InterventionAction.Status.OK, action.action_details
    assert (workdir / ".yokeflow/dev-service.pid").read_text().strip() == str(action.action_details["pid"])
    # The service runs in its own jail: the host does not see its port, the worktree's agent commands do.
    assert not _accepts(port)
    assert _reaches(workdir, port)

    assert dev_service_stop(workdir=workdir) is True
    assert not _reaches(workdir, port)


def _reaches(workdir: Path, port: int) -> bool:
    probe = f"python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2)\""
    return run_command(probe, cwd=workdir).ok


@pytest.mark.django_db
def test_a_dev_service_that_exits_at_once_fails_with_its_log(pause, workdir, dev_service):
    dev_service("echo 'cannot open data directory' >&2; exit 3")
    _block(pause, pattern="service_refused", port=_free_port())

    action = recovery_attempt(pause=pause)

    assert action.action_status == InterventionAction.Status.FAILED
    assert "exited with code 3" in action.action_details["message"]
    assert "cannot open data directory" in action.action_details["log_tail"]


@pytest.mark.django_db
def test_it_skips_the_restart_when_the_project_has_no_dev_service(pause, workdir):
    _block(pause, pattern="service_refused", port=_free_port())

    action = recovery_attempt(pause=pause)

    assert action.action_status == InterventionAction.Status.SKIPPED
    assert action.action_details["message"] == "the project declares no dev service"


@pytest.mark.django_db
def test_it_never_writes_its_log_through_a_link_out_of_the_worktree(pause, workdir, tmp_path, dev_service):
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me\n")
    (workdir / ".yokeflow").mkdir()
    (workdir / ".yokeflow/dev-service.log").symlink_to(outside)
    dev_service(DEV_SERVICE)
    _block(pause, pattern="service_refused", port=_free_port())

    action = recovery_attempt(pause=pause)

    assert action.action_status == InterventionAction.Status.FAILED
    assert "could not start the dev service" in action.action_details["message"]
    assert outside.read_text() == "keep me\n"


@pytest.mark.django_db
def test_dev_service_stop_leaves_a_process_without_our_markers_alone(workdir, listener):
    proc, _ = listener({})
    (workdir / ".yokeflow").mkdir()
    (workdir / ".yokeflow/dev-service.pid").write_text(f"{proc.pid}\n")

    assert dev_service_stop(workdir=workdir) is False
    assert proc.poll() is None


# --------------------------------------------------------------------------------------------------
# dispatch
# --------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_permission_denied_has_no_automatic_recovery(pause):
    _block(pause, pattern="permission_denied")

    assert recovery_attempt(pause=pause) is None
    assert not pause.actions.filter(action_type=InterventionAction.Type.RECOVERY).exists()
