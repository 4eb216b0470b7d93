"""`yokeflow config validate`: every missing or invalid setting, and what needs Django to check, in one run.

How it is wired, and why:

* The settings helpers (yokeflow/settings.py) raise ImproperlyConfigured at the first bad value, so with a bad
  configuration Django does not start, and neither does the `yokeflow` management command. `manage.py` therefore
  hands `yokeflow config …` to `main()` here *before* Django is set up. The management command registers the same
  verb (apps/core/cli.py) so it shows in `manage.py yokeflow --help` and works through `call_command`; both end in
  `validate()`.
* `validate()` never imports the settings itself: the calling process may already hold settings loaded the normal
  way (the management command's). It runs `python -m yokeflow.config report` as a child with
  YOKEFLOW_CONFIG_CHECK=1, the helpers' collect mode: a bad value is recorded as (NAME, problem) and replaced by
  its default. The child prints its findings as one JSON line; the parent prints one line per problem.
* The settings collect their own problems: every check in yokeflow/settings.py, of one value or of several,
  goes through its `_invalid` helper, so the child simply imports the module. It then sets Django up on those
  (defaulted) values and adds the checks that need Django: the database answers (with a short connect timeout),
  PROJECTS_ROOT is writable, git is on PATH, the provider key, and what production needs when DEBUG is off.

Errors make the command exit with the code of `apps.core.errors.ValidationError`; warnings are only reported.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from apps.core.errors import ValidationError, YokeFlowError, exit_code

BASE_DIR = Path(__file__).resolve().parent.parent
SETTINGS = "yokeflow.settings"
CHECK_ENV = "YOKEFLOW_CONFIG_CHECK"
MARKER = "yokeflow-config-report: "  # the child's report line; anything else it prints is ignored
CONNECT_TIMEOUT = 5  # seconds: an unreachable database is reported, not waited for
CHILD_TIMEOUT = 120
ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Problem:
    level: str  # ERROR fails the validation; WARNING is only reported
    name: str  # the variable (or "settings" when none is named)
    message: str

    @property
    def line(self) -> str:
        text = self.message if self.name in self.message else f"{self.name}: {self.message}"
        return f"{self.level}: {' '.join(text.split())}"  # one line, whatever the message held


# ----------------------------------------------------------------------------------------------- the parent


def validate(write: Callable[[str], Any]) -> list[Problem]:
    """Write one line per problem; raise ValidationError if any is an error."""
    problems = collect()
    for problem in problems:
        write(problem.line)
    errors = sum(problem.level == ERROR for problem in problems)
    warnings = len(problems) - errors
    if errors:
        raise ValidationError(f"configuration invalid: {_plural(errors, 'error')}, {_plural(warnings, 'warning')}",
                              code="invalid_configuration", details={"problems": [asdict(p) for p in problems]})
    write("configuration OK" + (f" ({_plural(warnings, 'warning')})" if warnings else ""))
    return problems


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def collect() -> list[Problem]:
    """Run the check in a fresh process in collect mode and return what it found."""
    path = os.pathsep.join(filter(None, [str(BASE_DIR), os.environ.get("PYTHONPATH")]))
    env = {"DJANGO_SETTINGS_MODULE": SETTINGS, **os.environ, CHECK_ENV: "1", "PYTHONPATH": path}
    try:
        done = subprocess.run([sys.executable, "-m", "yokeflow.config", "report"], env=env, capture_output=True,
                              text=True, timeout=CHILD_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return [Problem(ERROR, "settings", f"the configuration check did not finish within {CHILD_TIMEOUT} s")]
    found = [line.removeprefix(MARKER) for line in done.stdout.splitlines() if line.startswith(MARKER)]
    if not found:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}, no output"])[-1]
        return [Problem(ERROR, "settings", f"the configuration check itself failed: {last}")]
    return [Problem(**item) for item in json.loads(found[-1])]


def main(argv: list[str] | None = None) -> int:
    """`manage.py yokeflow config validate` before Django starts (and `python -m yokeflow.config validate`)."""
    parser = argparse.ArgumentParser(prog="manage.py yokeflow config", description="Check YokeFlow's configuration.")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="ACTION")
    verbs.add_parser("validate", help="report every missing or invalid setting in one run (non-zero exit on errors)")
    parser.parse_args(argv)
    try:
        validate(print)
    except YokeFlowError as exc:
        print(exc.message, file=sys.stderr)
        return exit_code(exc)
    return 0


# ----------------------------------------------------------------------------------------------- the child


def report() -> int:
    """The child: print the findings as one JSON line after MARKER (Django's own output goes to stderr)."""
    with contextlib.redirect_stdout(sys.stderr):
        problems = _check_everything()
    print(MARKER + json.dumps([asdict(problem) for problem in problems]), flush=True)
    return 0


def _check_everything() -> list[Problem]:
    os.environ[CHECK_ENV] = "1"
    base = _load_settings()
    if base is None:
        return _BROKEN + _git()
    problems = [Problem(ERROR, name, message) for name, message in base.config_problems]
    module = _settings_module(problems)
    problems += _production(module, problems)
    problems += _git()
    if module is None:
        return problems
    failed = _django_setup(module)
    if failed:
        problems.append(failed)
    if not any(problem.name == "DATABASE_URL" for problem in problems):  # else the default stands in for it
        problems += _database(migrations=failed is None)  # reading migrations needs the app registry
    return problems + _projects_root() + _provider()


def _load_settings() -> ModuleType | None:
    """Import yokeflow/settings.py in collect mode: its helpers record each bad value and go on with the default.
    Only a bug in the file itself can still raise; that is reported as the one problem it is."""
    try:
        return importlib.import_module(SETTINGS)
    except Exception as exc:
        return _broken(exc)


def _broken(exc: Exception) -> None:
    frame = next((f for f in reversed(traceback.extract_tb(exc.__traceback__)) if f.filename.endswith(".py")), None)
    where = f" (line {frame.lineno} of {Path(frame.filename).name})" if frame else ""
    _BROKEN.append(Problem(ERROR, "settings", f"the settings cannot be loaded{where}: {type(exc).__name__}: {exc}"))
    return None


_BROKEN: list[Problem] = []


def _settings_module(problems: list[Problem]) -> ModuleType | None:
    """The module DJANGO_SETTINGS_MODULE names (usually yokeflow.settings, already loaded)."""
    name = os.environ.get("DJANGO_SETTINGS_MODULE") or SETTINGS
    try:
        return importlib.import_module(name)
    except Exception as exc:
        problems.append(Problem(ERROR, "DJANGO_SETTINGS_MODULE", f"DJANGO_SETTINGS_MODULE {name} cannot be "
                                f"imported: {type(exc).__name__}: {exc}"))
        return None


def _production(module: ModuleType | None, problems: list[Problem]) -> list[Problem]:
    """What a deployment needs once DEBUG is off (the helpers only see one variable at a time)."""
    if module is None or getattr(module, "DEBUG", False):
        return []
    found = []
    reported = {problem.name for problem in problems}
    if not getattr(module, "SECRET_KEY", None) and "SECRET_KEY" not in reported:
        found.append(Problem(ERROR, "SECRET_KEY", "SECRET_KEY is not set; it is required when DEBUG is off"))
    if not getattr(module, "ALLOWED_HOSTS", None):
        found.append(Problem(ERROR, "ALLOWED_HOSTS", "ALLOWED_HOSTS is empty: with DEBUG off every request is "
                             "refused; list the site's host names (comma-separated)"))
    return found


def _django_setup(module: ModuleType) -> Problem | None:
    if not getattr(module, "SECRET_KEY", None):
        # Already reported. Django refuses to read an empty key and the start-up code reads it; this process
        # only checks, it never signs anything.
        module.SECRET_KEY = "config-check-only"
    try:
        import django

        django.setup()
    except Exception as exc:
        # The checks below need only the settings, not the app registry: they still run.
        return Problem(ERROR, "settings", f"Django cannot start with these settings ({type(exc).__name__}: "
                       f"{_first_line(exc)}); pending migrations were not checked")
    return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


# ----------------------------------------------------------------------------------------------- checks


def _database(*, migrations: bool) -> list[Problem]:
    from django.db import connections

    connection = connections["default"]
    if connection.vendor == "postgresql":
        connection.settings_dict.setdefault("OPTIONS", {})["connect_timeout"] = CONNECT_TIMEOUT
    where = _database_location(connection.settings_dict)
    try:
        connection.ensure_connection()
        pending = _pending_migrations(connection) if migrations else 0
    except Exception as exc:  # driver errors, a missing driver, a refused connection: all are findings here
        return [Problem(ERROR, "DATABASE_URL", f"DATABASE_URL: cannot connect to the {connection.vendor} database "
                        f"{where}: {_first_line(exc)}")]
    finally:
        connection.close()
    if pending:
        return [Problem(WARNING, "DATABASE_URL", f"DATABASE_URL: {_plural(pending, 'migration')} not applied yet "
                        f"to {where} (run `manage.py migrate`)")]
    return []


def _database_location(db: dict) -> str:
    # Never the password: this line is printed.
    if not db.get("HOST"):
        return str(db.get("NAME"))
    return f"{db.get('USER') or ''}{'@' if db.get('USER') else ''}{db['HOST']}:{db.get('PORT') or ''}/{db['NAME']}"


def _pending_migrations(connection: Any) -> int:
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    return len(executor.migration_plan(executor.loader.graph.leaf_nodes()))


def _projects_root() -> list[Problem]:
    from django.conf import settings

    root = Path(settings.PROJECTS_ROOT)
    existing = next((path for path in (root, *root.parents) if path.exists()), None)
    if existing is None or not existing.is_dir():
        return [Problem(ERROR, "PROJECTS_ROOT", f"PROJECTS_ROOT {root}: {existing or root} is not a directory")]
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "is not writable" if existing == root else f"cannot be created: {existing} is not writable"
        return [Problem(ERROR, "PROJECTS_ROOT", f"PROJECTS_ROOT {root} {where}")]
    return []


def _git() -> list[Problem]:
    if shutil.which("git"):
        return []
    return [Problem(ERROR, "PATH", "git is not on PATH: project repositories and worktrees need it")]


def _provider() -> list[Problem]:
    from django.conf import settings

    if settings.ANTHROPIC_API_KEY:
        return []
    if settings.LLM_PROVIDER == "anthropic":
        return [Problem(ERROR, "ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY is not set, but LLM_PROVIDER=anthropic "
                        "needs it")]
    if settings.LLM_PROVIDER == "replay":
        return []  # the replay model was asked for: nothing to warn about
    return [Problem(WARNING, "ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY is not set: the offline replay model will be "
                    "used")]


if __name__ == "__main__":
    sys.exit(report() if sys.argv[1:] == ["report"] else main())
