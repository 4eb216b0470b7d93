"""`python manage.py yokeflow <verb> …`: one command, verbs contributed by each app's `cli.py`.

An app adds verbs with a module-level `register(subparsers)` that calls `subparsers.add_parser(...)`
and sets `handler=` via `set_defaults`. Handlers take the parsed options and a writer, raise
YokeFlowError on failure, and this command turns that into one readable line and an exit code.
"""

from __future__ import annotations

import importlib
from argparse import ArgumentParser
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError

from apps.core.errors import YokeFlowError, exit_code


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
        try:
            options["handler"](options, self.stdout)
        except YokeFlowError as exc:
            raise CommandError(exc.message, returncode=exit_code(exc)) from None
