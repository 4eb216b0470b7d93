"""Every error category maps to one HTTP status and one exit code, in one table."""

from __future__ import annotations

import pytest

from apps.core import errors


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (errors.ValidationError("x"), 422, 65),
        (errors.PermissionDeniedError("x"), 403, 77),
        (errors.NotFoundError("x"), 404, 66),
        (errors.ConflictError("x"), 409, 75),
        (errors.InvalidTransitionError("x"), 409, 75),
        (errors.DatabaseError("x"), 503, 74),
        (errors.GitError("x"), 409, 74),
        (errors.ProviderError("x"), 502, 69),
        (errors.SandboxError("x"), 500, 71),
        (errors.BudgetExceededError("x"), 402, 75),
        (errors.YokeFlowError("x"), 500, 70),
    ],
)
def test_each_error_has_a_status_and_an_exit_code(error, status, code):
    assert errors.http_status(error) == status
    assert errors.exit_code(error) == code


def test_every_category_is_mapped():
    assert set(errors._STATUS) == set(errors.Category)


def test_an_error_serialises_with_its_code_and_details():
    error = errors.ConflictError("busy", code="slot_taken", recoverable=False, details={"slot": 3})

    assert error.as_dict() == {
        "error": "slot_taken", "category": "conflict", "message": "busy", "recoverable": False,
        "details": {"slot": 3},
    }
    assert errors.ProviderError("x").recoverable is True
