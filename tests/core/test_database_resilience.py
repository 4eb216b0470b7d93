"""Every job survives one lost database connection; SQLite writers wait for each other instead of failing."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from django.db import connection
from django.db.utils import ConnectionHandler

from apps.core.jobs import run_job
from yokeflow.settings import envdatabase

CALLS: list[int] = []


def job_that_loses_its_connection_once(marker: str) -> int:
    """A job whose first run has its connection terminated by the server in the middle of its work."""
    CALLS.append(1)
    with connection.cursor() as cursor:
        if len(CALLS) == 1:
            cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        cursor.execute("SELECT %s::text", [marker])
        return len(cursor.fetchone()[0])


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_job_whose_connection_is_lost_waits_reconnects_and_runs_again(settings):
    settings.DB_WAIT_SECONDS = 10
    CALLS.clear()

    result = run_job("tests.core.test_database_resilience.job_that_loses_its_connection_once", {}, "four")

    assert result == 4 and len(CALLS) == 2


def _sqlite(path: Path, monkeypatch) -> ConnectionHandler:
    monkeypatch.setenv("YF_TEST_SQLITE", f"sqlite:///{path}")
    config = envdatabase("YF_TEST_SQLITE", "")
    return ConnectionHandler({"default": config, "other": dict(config)})


@pytest.mark.django_db  # lets this test open its own connections to its own file
def test_sqlite_transactions_that_read_then_write_wait_for_a_writer_instead_of_failing(tmp_path, monkeypatch):
    handler = _sqlite(tmp_path / "db.sqlite3", monkeypatch)
    second = handler["other"]  # the handler is per thread: the writer below opens its own "default"
    with second.cursor() as cursor:
        cursor.execute("CREATE TABLE counter (n integer)")
        cursor.execute("INSERT INTO counter VALUES (0)")
    assert second.transaction_mode == "IMMEDIATE"
    holding, errors = threading.Event(), []

    def long_writer() -> None:
        first = handler["default"]
        first.ensure_connection()
        first._start_transaction_under_autocommit()  # what atomic() runs: BEGIN with the configured mode
        with first.cursor() as cursor:
            cursor.execute("UPDATE counter SET n = n + 1")
            holding.set()
            time.sleep(1.0)
        first.commit()
        first.close()

    thread = threading.Thread(target=long_writer)
    thread.start()
    holding.wait(5)
    try:  # a read, then a write: under DEFERRED the read's snapshot goes stale and the write fails at once
        second.ensure_connection()
        second._start_transaction_under_autocommit()
        with second.cursor() as cursor:
            cursor.execute("SELECT n FROM counter")
            cursor.execute("UPDATE counter SET n = n + 1")
        second.commit()
    except Exception as exc:  # collected: the assertion below names it
        errors.append(repr(exc))
    thread.join()
    with second.cursor() as cursor:
        cursor.execute("SELECT n FROM counter")
        assert cursor.fetchone()[0] == 2 and errors == []
    second.close()
