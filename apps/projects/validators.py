"""Checks of project settings that reach git and the file system: a default branch is passed to git, env_files
patterns are matched against the repository. Both must stay what they claim to be, whatever a member types."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

# git check-ref-format's rules for a branch name, plus: never an option (a leading "-" would be read as one).
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def validate_git_ref(value: str) -> None:
    problem = _ref_problem(value)
    if problem:
        raise ValidationError(f"{value[:100]!r} is not a valid branch name: {problem}", code="invalid_ref")


def _ref_problem(value: str) -> str:
    if not value:
        return "empty"
    if value.startswith("-"):
        return "must not start with '-'"
    if _REF_FORBIDDEN.search(value):
        return "no spaces, control characters or any of ~ ^ : ? * [ \\"
    if ".." in value or "@{" in value or "//" in value or value == "@":
        return "no '..', '@{' or '//', and not '@'"
    if value.startswith("/") or value.endswith(("/", ".", ".lock")):
        return "must not start with '/' or end with '/', '.' or '.lock'"
    if any(part.startswith(".") for part in value.split("/")):
        return "no part may start with '.'"
    return ""


def validate_env_files(value: object) -> None:
    """A list of glob patterns relative to the repository, never leaving it."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError("must be a list of glob patterns", code="bad_pattern")
    for pattern in value:
        parts = pattern.replace("\\", "/").split("/")
        if not pattern.strip() or "\x00" in pattern:
            raise ValidationError("a pattern must not be empty or hold a NUL character", code="bad_pattern")
        if pattern.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", pattern) or ".." in parts:
            raise ValidationError(f"{pattern[:100]!r} must be relative to the repository, without '..'",
                                  code="bad_pattern")
