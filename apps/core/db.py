"""The database going away and coming back: waiting for it at start, reconnecting inside a job.

Connection errors (the server restarted, a network blip) are told apart from query errors: only the former are
waited out and retried.
"""

from __future__ import annotations

import logging
import time

from django.db import DatabaseError, InterfaceError, OperationalError, close_old_connections, connections
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

log = logging.getLogger("yokeflow.db")


def is_connection_error(exc: BaseException) -> bool:
    """A lost or refused connection, as opposed to a bad query or a constraint."""
    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    text = str(exc).lower()
    return any(word in text for word in ("connection", "server closed", "terminating", "could not connect",
                                         "the database system is", "connection refused", "ssl syscall"))


def _ping() -> None:
    connection = connections["default"]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        connection.close()  # broken: the next attempt opens a new connection
        raise


def wait_for_database(seconds: float, *, first_wait: float = 0.5) -> float:
    """Try the database with exponential backoff (0.5 s, 1 s, 2 s … at most 8 s apart) for up to `seconds`.

    Every failed attempt is logged; returns the time waited, raises OperationalError when it gives up."""
    start = time.monotonic()
    attempts = Retrying(stop=stop_after_delay(seconds), wait=wait_exponential(multiplier=first_wait, max=8),
                        retry=retry_if_exception_type(DatabaseError), reraise=False,
                        before_sleep=lambda state: log.warning(
                            "database not reachable (attempt %s): %s", state.attempt_number,
                            str(state.outcome.exception()).strip().splitlines()[0][:200]))
    try:
        attempts(_ping)
    except RetryError as exc:
        raise OperationalError(f"the database did not answer within {seconds:.0f} s: "
                               f"{exc.last_attempt.exception()}") from None
    waited = time.monotonic() - start
    if waited > 0.01:
        log.info("database reachable after %.1f s", waited)
    return waited


def reconnect(seconds: float) -> None:
    """After a connection error inside a job: drop the broken connections and wait until the database answers."""
    close_old_connections()
    connections.close_all()
    wait_for_database(seconds)
