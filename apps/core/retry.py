"""Retrying a short database transaction that lost a race it could not win: a deadlock, a serialization failure,
or a busy SQLite file. The whole transaction runs again from the start, after a short random backoff.

Only the outermost transaction is retried (inside another one the failure belongs to the caller's transaction,
which is already broken), and only these errors: a constraint or a bad query is raised at once.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from django.db import DatabaseError, OperationalError, connection, transaction
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

log = logging.getLogger("yokeflow.db")
ATTEMPTS = 8
# PostgreSQL's SQLSTATEs for a deadlock and a serialization failure; SQLite's words for a busy file.
_RETRYABLE_STATES = {"40P01", "40001"}
_RETRYABLE_WORDS = ("deadlock detected", "could not serialize", "database is locked", "database table is locked")


def is_retryable(exc: BaseException) -> bool:
    if not isinstance(exc, DatabaseError):
        return False
    state = getattr(getattr(exc, "__cause__", None), "sqlstate", None)
    return state in _RETRYABLE_STATES or (isinstance(exc, OperationalError) and any(
        word in str(exc).lower() for word in _RETRYABLE_WORDS))


def _run[T](func: Callable[[], T], *, atomic: bool) -> T:
    if connection.in_atomic_block:  # the caller's transaction owns the failure
        if atomic:
            with transaction.atomic():
                return func()
        return func()

    def once() -> T:
        if not atomic:
            return func()
        with transaction.atomic():
            return func()

    retrying = Retrying(retry=retry_if_exception(is_retryable), stop=stop_after_attempt(ATTEMPTS),
                        wait=wait_random_exponential(multiplier=0.02, max=1.0), reraise=True,
                        before_sleep=lambda state: log.warning(
                            "retrying after %s (attempt %s)", str(state.outcome.exception()).splitlines()[0][:120],
                            state.attempt_number))
    return retrying(once)


class _DbRetry:
    """`db_retry(func)` calls `func()` again when it lost such a race; `@db_retry.atomic` makes a function one
    retried transaction."""

    def __call__[T](self, func: Callable[[], T]) -> T:
        return _run(func, atomic=False)

    def atomic[T](self, func: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(func)
        def wrapper(*args: object, **kwargs: object) -> T:
            return _run(lambda: func(*args, **kwargs), atomic=True)
        return wrapper


db_retry = _DbRetry()
