"""Connection roles: web on WEB_DATABASE_URL (may be a transaction-mode pooler), the rest on a session.

The pooler here is Debian's PgBouncer in transaction mode (tests/pgbouncer.py) in front of the
test database: the behaviour of Supabase's transaction pooler on port 6543.
"""

from __future__ import annotations

import psycopg
import pytest

import config as settings
from viewzenix.db import Database
from viewzenix.runtime import build_runtime


def _query_while_its_server_connection_is_taken(db: Database, pgbouncer_url: str) -> None:
    """Run one query often enough for psycopg to prepare it (its threshold is 5), then once more
    while another client holds the server connection it was prepared on.

    PgBouncer reuses the most recently released server connection first (LIFO), so the other
    client's transaction takes the one the query ran on, and the query's next transaction goes
    to another server connection: deterministic, not a race.
    """
    for i in range(8):
        with db.transaction() as conn:
            assert conn.execute("select %s::int + 1 as n", (i,)).fetchone()["n"] == i + 1
    with psycopg.connect(pgbouncer_url, prepare_threshold=None) as other:
        other.execute("select 1")  # opens a transaction: holds a server connection until rollback
        try:
            with db.transaction() as conn:
                assert conn.execute("select %s::int + 1 as n", (41,)).fetchone()["n"] == 42
        finally:
            other.rollback()


def test_a_pool_marked_as_behind_a_transaction_pooler_works_through_pgbouncer(pgbouncer_url):
    db = Database(pgbouncer_url, min_size=1, max_size=1, transaction_pooler=True).open()
    try:
        _query_while_its_server_connection_is_taken(db, pgbouncer_url)
    finally:
        db.close()


def test_prepared_statements_break_behind_pgbouncer_in_transaction_mode(pgbouncer_url):
    """Why the web pool turns them off: with psycopg's default prepare threshold, a statement
    prepared on one server connection is unknown on the next."""
    db = Database(pgbouncer_url, min_size=1, max_size=1, transaction_pooler=False).open()
    try:
        # "does not exist" on the other server connection (or "already exists" where another
        # client's statement of the same name lives).
        broken = (psycopg.errors.InvalidSqlStatementName, psycopg.errors.DuplicatePreparedStatement)
        with pytest.raises(broken, match="prepared statement"):
            _query_while_its_server_connection_is_taken(db, pgbouncer_url)
    finally:
        db.close()


def test_web_role_uses_web_database_url_without_prepared_statements(database_url, pgbouncer_url, tmp_path):
    config = settings.TestingConfig(
        {"DATABASE_URL": database_url, "WEB_DATABASE_URL": pgbouncer_url, "DATA_DIR": str(tmp_path)}
    )
    web = build_runtime(config, role="web")
    worker = build_runtime(config)
    try:
        assert web.db.url == pgbouncer_url
        assert web.db.transaction_pooler is True
        assert web.db.pool.kwargs["prepare_threshold"] is None
        # Migrations and the cron-driven runner's worker keep the session URL.
        assert web.database_url == database_url
        assert web.jobs.connector._pool_args["conninfo"] == pgbouncer_url
        assert web.jobs.connector._pool_args["kwargs"] == {"prepare_threshold": None}
        # The job worker (LISTEN/NOTIFY) never goes through the pooler.
        assert worker.db.url == database_url
        assert worker.db.transaction_pooler is False
        assert "prepare_threshold" not in worker.db.pool.kwargs
        assert worker.jobs.connector._pool_args["conninfo"] == database_url
        assert worker.jobs.connector._pool_args["max_size"] == config.JOB_POOL_SIZE
    finally:
        web.close()
        worker.close()


def test_without_web_database_url_the_web_uses_database_url_with_prepared_statements(database_url, tmp_path):
    config = settings.TestingConfig({"DATABASE_URL": database_url, "DATA_DIR": str(tmp_path)})
    web = build_runtime(config, role="web")
    try:
        assert web.db.url == database_url
        assert web.db.transaction_pooler is False
    finally:
        web.close()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DB_POOL_MAX_SIZE": "0"}, "DB_POOL_MAX_SIZE must be at least 1"),
        ({"JOB_POOL_SIZE": "0"}, "JOB_POOL_SIZE must be at least 1"),
        ({"DB_POOL_MIN_SIZE": "11"}, "DB_POOL_MIN_SIZE must be between 0 and DB_POOL_MAX_SIZE (10)"),
    ],
)
def test_pool_sizes_are_checked(env, message):
    from config import ConfigError

    with pytest.raises(ConfigError) as caught:
        settings.TestingConfig(env)
    assert message in str(caught.value)
