"""Database.request_transaction: one ambient transaction per request, which every
Database.transaction() in the same context joins as a savepoint (so a request's work and its
idempotency-key record commit or roll back together)."""

from __future__ import annotations

import threading
import uuid

import psycopg
import pytest

from viewzenix.db import Database


def claims_of(user_id: uuid.UUID) -> dict:
    return {"sub": str(user_id), "role": "authenticated", "aud": "authenticated"}


def profile_exists(database_url: str, user_id: uuid.UUID) -> bool:
    """Read through a separate connection: only committed rows are visible."""
    with psycopg.connect(database_url) as conn:
        return conn.execute("select 1 from public.users where id = %s", (user_id,)).fetchone() is not None


def insert_profile(conn, user_id: uuid.UUID) -> None:
    conn.execute("insert into public.users (id) values (%s)", (user_id,))


def test_a_transaction_inside_joins_it_and_commits_with_it(db, database_url):
    user_id = uuid.uuid4()
    with db.request_transaction() as outer:
        with db.transaction() as inner:
            assert inner is outer
            insert_profile(inner, user_id)
        assert not profile_exists(database_url, user_id)  # released savepoint, not yet committed
    assert profile_exists(database_url, user_id)


def test_rolling_back_the_request_undoes_the_joined_work(db, database_url):
    user_id = uuid.uuid4()
    with db.request_transaction():
        with db.transaction() as conn:
            insert_profile(conn, user_id)
        raise psycopg.Rollback()
    assert not profile_exists(database_url, user_id)


def test_an_error_in_a_joined_block_undoes_only_that_block(db, database_url):
    kept, undone = uuid.uuid4(), uuid.uuid4()
    with db.request_transaction():
        with pytest.raises(ValueError):
            with db.transaction() as conn:
                insert_profile(conn, undone)
                raise ValueError("service refused")
        with db.transaction() as conn:
            insert_profile(conn, kept)
    assert profile_exists(database_url, kept)
    assert not profile_exists(database_url, undone)


def test_a_joined_block_runs_as_its_own_claims_then_the_request_claims_return(db):
    a, b = uuid.uuid4(), uuid.uuid4()
    who = "select current_user as role, auth.uid() as uid"
    with db.request_transaction(claims_of(a)) as conn:
        assert conn.execute(who).fetchone() == {"role": "authenticated", "uid": a}
        with db.transaction(claims_of(b)):
            assert conn.execute(who).fetchone() == {"role": "authenticated", "uid": b}
        with db.transaction() as backend:
            assert backend.execute(who).fetchone()["role"] not in ("authenticated", "anon")
            assert backend.execute(who).fetchone()["uid"] is None
        with pytest.raises(ValueError):
            with db.transaction(claims_of(b)):
                raise ValueError
        with db.transaction(claims_of(a)):
            assert conn.execute(who).fetchone() == {"role": "authenticated", "uid": a}
        assert conn.execute(who).fetchone() == {"role": "authenticated", "uid": a}


def test_it_ends_with_its_block_even_on_error(db):
    with pytest.raises(ValueError):
        with db.request_transaction() as outer:
            raise ValueError
    with db.transaction() as conn:
        assert conn.execute("select 1 as one").fetchone() == {"one": 1}
    with db.request_transaction() as again:
        with db.transaction() as inner:
            assert inner is again
    assert outer is not None


def test_it_cannot_be_nested(db):
    with db.request_transaction():
        with pytest.raises(RuntimeError, match="already open"):
            with db.request_transaction():
                pass


def test_another_database_or_thread_does_not_join(db, database_url):
    other = Database(database_url, min_size=1, max_size=2).open()
    seen: list = []
    try:
        with db.request_transaction() as outer:
            with other.transaction() as conn:
                seen.append(conn is outer)
            thread = threading.Thread(target=lambda: seen.append(_joined(db, outer)))
            thread.start()
            thread.join()
    finally:
        other.close()
    assert seen == [False, False]


def _joined(db: Database, outer) -> bool:
    with db.transaction() as conn:
        return conn is outer
