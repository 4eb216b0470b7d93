"""The one error hierarchy of YokeFlow, and the one place that maps errors to HTTP and exit codes.

Services raise these; the API's exception handler and the `yokeflow` command translate them with
`http_status()` and `exit_code()`, so a new error class never needs a new `except` anywhere else.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Category(StrEnum):
    VALIDATION = "validation"
    PERMISSION = "permission"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    DATABASE = "database"
    GIT = "git"
    PROVIDER = "provider"
    SANDBOX = "sandbox"
    BUDGET = "budget"
    INTERNAL = "internal"


# One row per category: (HTTP status, CLI exit code). Exit codes follow sysexits.h where one fits.
_STATUS: dict[Category, tuple[int, int]] = {
    Category.VALIDATION: (422, 65),  # EX_DATAERR
    Category.PERMISSION: (403, 77),  # EX_NOPERM
    Category.NOT_FOUND: (404, 66),  # EX_NOINPUT
    Category.CONFLICT: (409, 75),  # EX_TEMPFAIL: try again once the other party is done
    Category.DATABASE: (503, 74),  # EX_IOERR
    Category.GIT: (409, 74),  # the repository's state refused the operation (dirty, wrong branch, timeout)
    Category.PROVIDER: (502, 69),  # EX_UNAVAILABLE
    Category.SANDBOX: (500, 71),  # EX_OSERR
    Category.BUDGET: (402, 75),
    Category.INTERNAL: (500, 70),  # EX_SOFTWARE
}


class YokeFlowError(Exception):
    """Base of every error YokeFlow raises on purpose.

    `code` is a stable machine-readable identifier, `recoverable` tells automation whether retrying
    (or resuming after a human acts) can succeed, `details` carries structured context such as the
    offending keys or fields.
    """

    category: Category = Category.INTERNAL
    code: str = "internal_error"
    recoverable: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        recoverable: bool | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if recoverable is not None:
            self.recoverable = recoverable
        self.details = details or {}

    def as_dict(self) -> dict[str, Any]:
        return {
            "error": self.code,
            "category": str(self.category),
            "message": self.message,
            "recoverable": self.recoverable,
            "details": self.details,
        }


class ValidationError(YokeFlowError):
    category = Category.VALIDATION
    code = "invalid"


class PermissionDeniedError(YokeFlowError):
    category = Category.PERMISSION
    code = "permission_denied"


class NotFoundError(YokeFlowError):
    category = Category.NOT_FOUND
    code = "not_found"


class ConflictError(YokeFlowError):
    category = Category.CONFLICT
    code = "conflict"
    recoverable = True


class InvalidTransitionError(ConflictError):
    code = "invalid_transition"
    recoverable = False


class DatabaseError(YokeFlowError):
    category = Category.DATABASE
    code = "database_error"
    recoverable = True


class GitError(YokeFlowError):
    category = Category.GIT
    code = "git_error"


class ProviderError(YokeFlowError):
    category = Category.PROVIDER
    code = "provider_error"
    recoverable = True


class SandboxError(YokeFlowError):
    category = Category.SANDBOX
    code = "sandbox_error"


class BudgetExceededError(YokeFlowError):
    category = Category.BUDGET
    code = "budget_exceeded"
    recoverable = True


def http_status(error: YokeFlowError) -> int:
    return _STATUS[error.category][0]


def exit_code(error: YokeFlowError) -> int:
    return _STATUS[error.category][1]
