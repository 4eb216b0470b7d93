"""`python manage.py yokeflow <verb> …`: one command, verbs contributed by each app's `cli.py`.

An app adds verbs with a module-level `register(subparsers)` that calls `subparsers.add_parser(...)`
and sets `handler=` via `set_defaults`. Handlers take the parsed options and a writer, raise
YokeFlowError on failure, and this command turns that into one readable line and an exit code.
"""

from __future__ import annotations

import getpass
import importlib
import socket
from argparse import ArgumentParser
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError

from apps.core.context import WorkContext, started
from apps.core.errors import YokeFlowError, exit_code


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (e.g. a container user without a passwd entry)
        return "cli"


def _register_verbs(subparsers: Any) -> None:
    for config in apps.get_app_configs():
        if not config.name.startswith("apps."):
            continue
        try:
            module = importlib.import_module(f"{config.name}.cli")
        except ModuleNotFoundError as exc:
            if exc.name != f"{config.name}.cli":
                raise  # a real import error inside a cli module must not be hidden
            continue
        module.register(subparsers)


class Command(BaseCommand):
    help = "YokeFlow: create projects, import plans, inspect graphs and runs, manage API tokens."

    def add_arguments(self, parser: ArgumentParser) -> None:
        subparsers = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
        _register_verbs(subparsers)

    def handle(self, *args: Any, **options: Any) -> None:
        context = WorkContext(actor=_os_user(), origin=f"cli {socket.gethostname()}")
        try:
            with started(context):
                options["handler"](options, self.stdout)
        except YokeFlowError as exc:
            raise CommandError(exc.message, returncode=exit_code(exc)) from None
