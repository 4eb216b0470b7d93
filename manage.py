#!/usr/bin/env python
"""Django's command-line entry point for YokeFlow."""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "yokeflow.settings")
    if sys.argv[1:3] == ["yokeflow", "config"]:
        # Before Django starts: the settings being checked may be what keeps Django from starting.
        from yokeflow.config import main as config_main

        sys.exit(config_main(sys.argv[3:]))
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
