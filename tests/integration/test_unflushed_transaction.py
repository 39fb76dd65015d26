"""``Database.transaction(without_flush=True)``: one round trip to begin, and a transaction still.

It begins with one simple query (``BEGIN; SET LOCAL synchronous_commit = off``, plus the timeouts
behind a transaction pooler) on a connection in autocommit, and ends with COMMIT or ROLLBACK.
What it must keep of ``transaction()``: its work commits together or not at all, an error rolls
it back, a transaction the server failed is never reported committed, the setting does not leak
to the pool's next user, and it starts with one round trip where the other takes two.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest

from viewzenix.db import Database
from viewzenix.db.pools import SessionTimeouts

pytestmark = pytest.mark.db


@pytest.fixture
def table(database_url):  # type: ignore[no-untyped-def]
    name = f"unflushed_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url, autocommit=True) as setup:
        setup.execute(f"create table {name} (id int primary key)")
    yield name
    with psycopg.connect(database_url, autocommit=True) as setup:
        setup.execute(f"drop table {name}")


def _ids(database_url: str, table: str) -> list[int]:
    with psycopg.connect(database_url) as conn:
        return [r[0] for r in conn.execute(f"select id from {table} order by id")]


def test_it_commits_without_waiting_for_the_flush_and_the_setting_ends_with_it(database_url, table):
    db = Database(database_url, max_size=1).open()
    try:
        with db.transaction(without_flush=True) as conn:
            conn.execute(f"insert into {table} values (1), (2)")
            setting = conn.execute("show synchronous_commit").fetchone()["synchronous_commit"]
            status = conn.info.transaction_status
        assert setting == "off"
        assert status == psycopg.pq.TransactionStatus.INTRANS  # one transaction, not autocommit
        assert _ids(database_url, table) == [1, 2]
        # The pool's one connection, next user: the setting was transaction-local, autocommit is off.
        with db.transaction() as conn:
            assert conn.execute("show synchronous_commit").fetchone()["synchronous_commit"] == "on"
            assert conn.autocommit is False
    finally:
        db.close()


def test_an_error_rolls_back_all_of_it(database_url, table):
    db = Database(database_url, max_size=1).open()
    try:
        with pytest.raises(RuntimeError, match="after the insert"):
            with db.transaction(without_flush=True) as conn:
                conn.execute(f"insert into {table} values (1)")
                raise RuntimeError("after the insert")
        assert _ids(database_url, table) == []
        with db.transaction() as conn:  # the connection went back to the pool usable
            assert conn.execute("select 1 as one").fetchone() == {"one": 1}
    finally:
        db.close()


def test_a_transaction_the_server_failed_is_not_reported_committed(database_url, table):
    # Postgres answers COMMIT in a failed transaction with a silent ROLLBACK: the block's caught
    # error must not turn into a success whose writes are gone.
    db = Database(database_url, max_size=1).open()
    try:
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            with db.transaction(without_flush=True) as conn:
                conn.execute(f"insert into {table} values (1)")
                with pytest.raises(psycopg.errors.UniqueViolation):
                    conn.execute(f"insert into {table} values (1)")
        assert _ids(database_url, table) == []
    finally:
        db.close()


def test_a_savepoint_inside_it_keeps_the_transaction_usable(database_url, table):
    db = Database(database_url, max_size=1).open()
    try:
        with db.transaction(without_flush=True) as conn:
            conn.execute(f"insert into {table} values (1)")
            with pytest.raises(psycopg.errors.UniqueViolation):
                with conn.transaction():  # a savepoint: the server's transaction block is open
                    conn.execute(f"insert into {table} values (1)")
            conn.execute(f"insert into {table} values (2)")
        assert _ids(database_url, table) == [1, 2]
    finally:
        db.close()


def test_behind_a_transaction_pooler_the_timeouts_are_set_in_the_same_query(database_url):
    # A transaction pooler drops libpq's options, so the timeouts go with each transaction; here
    # they ride in the BEGIN query instead of a set_config round trip of their own.
    db = Database(
        database_url, max_size=1, transaction_pooler=True, timeouts=SessionTimeouts(5000, 300, 60000)
    ).open()
    try:
        with db.transaction(without_flush=True) as conn:
            row = conn.execute(
                "select current_setting('statement_timeout') as s, current_setting('lock_timeout') as l,"
                " current_setting('synchronous_commit') as c"
            ).fetchone()
        assert row == {"s": "5s", "l": "300ms", "c": "off"}
    finally:
        db.close()


def test_it_begins_in_one_round_trip_where_transaction_and_set_config_take_two(database_url, monkeypatch):
    db = Database(database_url, max_size=1).open()
    sent: list[str] = []
    execute, exec_command = psycopg.Cursor.execute, psycopg.Connection._exec_command

    def counting(cursor, query, *a, **k):  # type: ignore[no-untyped-def]
        sent.append(str(query))
        return execute(cursor, query, *a, **k)

    def counting_command(conn, command, *a, **k):  # type: ignore[no-untyped-def]
        sent.append(command.decode() if isinstance(command, bytes) else str(command))
        return exec_command(conn, command, *a, **k)

    monkeypatch.setattr(psycopg.Cursor, "execute", counting)
    monkeypatch.setattr(psycopg.Connection, "_exec_command", counting_command)
    try:
        with db.transaction(without_flush=True) as conn:
            conn.execute("select 1")
        assert [s.split(";")[0].strip().lower() for s in sent] == ["begin", "select 1", "commit"]
    finally:
        db.close()


def test_a_rollback_asked_for_rolls_back_quietly(database_url, table):
    # As conn.transaction() does: psycopg.Rollback ends the block, rolls back, raises nothing.
    db = Database(database_url, max_size=1).open()
    try:
        with db.transaction(without_flush=True) as conn:
            conn.execute(f"insert into {table} values (1)")
            raise psycopg.Rollback()
        assert _ids(database_url, table) == []
        with db.transaction() as conn:
            assert conn.autocommit is False
            assert conn.execute("select 1 as one").fetchone() == {"one": 1}
    finally:
        db.close()
