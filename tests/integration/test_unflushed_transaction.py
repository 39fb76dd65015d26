"""``Database.transaction(without_flush=True)``: no round trip of its own to begin, a transaction still.

Its ``BEGIN`` and ``SET LOCAL synchronous_commit = off`` (plus the timeouts behind a transaction
pooler) go in one pipeline with its first statement, on a connection in autocommit; it ends with
COMMIT or ROLLBACK, or with ``ending_transaction``'s last statements carrying the COMMIT. What it
must keep of ``transaction()``: its work commits together or not at all, an error rolls it back,
a transaction the server failed is never reported committed, the setting does not leak to the
pool's next user, and nothing runs outside it (a savepoint first, a statement after its COMMIT).
"""

from __future__ import annotations

import uuid

import psycopg
import pytest
from wire import Wire

from viewzenix.db import Database
from viewzenix.db.pools import SessionTimeouts

pytestmark = pytest.mark.db


@pytest.fixture
def db(database_url):  # type: ignore[no-untyped-def]
    """A Database of one connection: the pool's next user gets the same connection."""
    database = Database(database_url, max_size=1).open()
    yield database
    database.close()


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


def _assert_handed_back_usable(db) -> None:  # type: ignore[no-untyped-def]
    """The pool's connection, next user: a plain transaction (autocommit off) that answers."""
    with db.transaction() as conn:
        assert conn.autocommit is False
        assert conn.execute("select 1 as one").fetchone() == {"one": 1}


def test_it_commits_without_waiting_for_the_flush_and_the_setting_ends_with_it(db, database_url, table):
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


def test_an_error_rolls_back_all_of_it(db, database_url, table):
    with pytest.raises(RuntimeError, match="after the insert"):
        with db.transaction(without_flush=True) as conn:
            conn.execute(f"insert into {table} values (1)")
            raise RuntimeError("after the insert")
    assert _ids(database_url, table) == []
    _assert_handed_back_usable(db)


def test_a_transaction_the_server_failed_is_not_reported_committed(db, database_url, table):
    # Postgres answers COMMIT in a failed transaction with a silent ROLLBACK: the block's caught
    # error must not turn into a success whose writes are gone.
    with pytest.raises(psycopg.errors.InFailedSqlTransaction):
        with db.transaction(without_flush=True) as conn:
            conn.execute(f"insert into {table} values (1)")
            with pytest.raises(psycopg.errors.UniqueViolation):
                conn.execute(f"insert into {table} values (1)")
    assert _ids(database_url, table) == []


def test_a_savepoint_inside_it_keeps_the_transaction_usable(db, database_url, table):
    with db.transaction(without_flush=True) as conn:
        conn.execute(f"insert into {table} values (1)")
        with pytest.raises(psycopg.errors.UniqueViolation):
            with conn.transaction():  # a savepoint: the server's transaction block is open
                conn.execute(f"insert into {table} values (1)")
        conn.execute(f"insert into {table} values (2)")
    assert _ids(database_url, table) == [1, 2]


def test_behind_a_transaction_pooler_the_timeouts_are_set_in_the_same_query(database_url):
    # A transaction pooler drops libpq's options, so the timeouts go with each transaction; here
    # they go with the BEGIN, in the first statement's pipeline, not in a round trip of their own.
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


def test_its_begin_goes_with_the_first_statement(db, database_url, table, monkeypatch):
    # BEGIN and SET LOCAL are sent in one pipeline with the first statement: one round trip for
    # the three, then the COMMIT.
    db = Database(database_url, max_size=1).open()
    wire = Wire(monkeypatch)
    try:
        with db.transaction(without_flush=True) as conn:
            conn.execute(f"insert into {table} values (1)")
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
            conn.execute(f"insert into {table} values (2)")
        assert wire.trips == [
            ["begin", "set local synchronous_commit = off", f"insert into {table} values (1)"],
            [f"insert into {table} values (2)"],
            ["commit"],
        ]
        assert _ids(database_url, table) == [1, 2]
    finally:
        db.close()


def test_its_begin_joins_the_first_pipeline_block_and_its_commit_the_last(
    db, database_url, table, monkeypatch
):
    from viewzenix.db import ending_transaction

    db = Database(database_url, max_size=1).open()
    wire = Wire(monkeypatch)
    try:
        with db.transaction(without_flush=True) as conn:
            with conn.pipeline():
                conn.execute(f"insert into {table} values (1)")
                conn.execute(f"insert into {table} values (2)")
            with ending_transaction(conn):
                written = conn.execute(f"insert into {table} values (3) returning id")
            assert written.fetchone() == {"id": 3}  # answers are read after the block
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE  # committed
        insert = f"insert into {table} values"
        assert wire.trips == [
            ["begin", "set local synchronous_commit = off", f"{insert} (1)", f"{insert} (2)"],
            [f"{insert} (3) returning id", "commit"],
        ]
        assert _ids(database_url, table) == [1, 2, 3]
    finally:
        db.close()


def test_a_transaction_that_sent_nothing_sends_no_begin_and_no_commit(db, database_url, monkeypatch):
    with db.transaction() as conn:  # the pool's connection opened and checked before counting
        conn.execute("select 1")
    wire = Wire(monkeypatch)
    with db.transaction(without_flush=True):
        pass
    assert wire.trips == []
    _assert_handed_back_usable(db)


def test_a_failing_last_statement_commits_nothing(db, database_url, table):
    from viewzenix.db import ending_transaction

    with pytest.raises(psycopg.errors.UniqueViolation):
        with db.transaction(without_flush=True) as conn:
            conn.execute(f"insert into {table} values (1)")
            with ending_transaction(conn):  # the COMMIT queued behind it is never run
                conn.execute(f"insert into {table} values (1)")
    assert _ids(database_url, table) == []
    _assert_handed_back_usable(db)  # rolled back


def test_a_failing_first_statement_leaves_nothing_open(db, database_url, table):
    with pytest.raises(psycopg.errors.UndefinedTable):
        with db.transaction(without_flush=True) as conn:
            conn.execute("insert into no_such_table values (1)")
    with db.transaction() as conn:
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        assert conn.execute("show synchronous_commit").fetchone()["synchronous_commit"] == "on"


def test_no_statement_may_follow_the_commit_of_its_last_statements(db, database_url, table):
    from viewzenix.db import ending_transaction

    with pytest.raises(psycopg.ProgrammingError, match="after the transaction's COMMIT"):
        with db.transaction(without_flush=True) as conn:
            with ending_transaction(conn):
                conn.execute(f"insert into {table} values (1)")
            conn.execute(f"insert into {table} values (2)")  # would run in autocommit
    assert _ids(database_url, table) == [1]
    with db.transaction() as conn:  # the guard ends with the transaction
        conn.execute(f"insert into {table} values (3)")
    assert _ids(database_url, table) == [1, 3]


def test_a_savepoint_as_the_first_thing_opens_the_transaction_first(db, database_url, table):
    # psycopg, seeing no transaction on an autocommit connection, would open and commit one of
    # its own for the savepoint's block: the pending BEGIN is sent first instead.
    with pytest.raises(RuntimeError, match="after the savepoint"):
        with db.transaction(without_flush=True) as conn:
            with conn.transaction():
                conn.execute(f"insert into {table} values (1)")
            raise RuntimeError("after the savepoint")
    assert _ids(database_url, table) == []


def test_elsewhere_its_last_statements_are_a_plain_pipeline_block(db, database_url, table):
    from viewzenix.db import ending_transaction

    with pytest.raises(RuntimeError, match="after the block"):
        with db.transaction() as conn:
            with ending_transaction(conn):
                conn.execute(f"insert into {table} values (1)")
            conn.execute(f"insert into {table} values (2)")  # still the same transaction
            raise RuntimeError("after the block")
    assert _ids(database_url, table) == []


def test_a_rollback_asked_for_rolls_back_quietly(db, database_url, table):
    # As conn.transaction() does: psycopg.Rollback ends the block, rolls back, raises nothing.
    with db.transaction(without_flush=True) as conn:
        conn.execute(f"insert into {table} values (1)")
        raise psycopg.Rollback()
    assert _ids(database_url, table) == []
    _assert_handed_back_usable(db)


def test_its_last_statements_never_report_a_failed_transaction_committed(db, database_url, table):
    # A caught error (no savepoint) fails the transaction in the server; Postgres answers the
    # COMMIT queued by an (even empty) ending block with ROLLBACK, which must not pass for one.
    from viewzenix.db import ending_transaction

    with pytest.raises(psycopg.errors.InFailedSqlTransaction):
        with db.transaction(without_flush=True) as conn:
            conn.execute(f"insert into {table} values (1)")
            with pytest.raises(psycopg.errors.UniqueViolation):
                conn.execute(f"insert into {table} values (1)")
            with ending_transaction(conn):
                pass
    assert _ids(database_url, table) == []


def test_an_ending_block_before_any_statement_commits_nothing_and_the_rest_still_commits(
    db, database_url, table
):
    from viewzenix.db import ending_transaction

    with db.transaction(without_flush=True) as conn:
        with ending_transaction(conn):
            pass  # the transaction has sent nothing: nothing to commit, nothing ended
        conn.execute(f"insert into {table} values (1)")
    assert _ids(database_url, table) == [1]


def test_an_ending_block_inside_a_savepoint_does_not_commit_the_transaction(db, database_url, table):
    from viewzenix.db import ending_transaction

    with pytest.raises(RuntimeError, match="after the savepoint"):
        with db.transaction(without_flush=True) as conn:
            conn.execute(f"insert into {table} values (1)")
            with conn.transaction():
                with ending_transaction(conn):
                    conn.execute(f"insert into {table} values (2)")
            raise RuntimeError("after the savepoint")
    assert _ids(database_url, table) == []
