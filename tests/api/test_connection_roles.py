"""Connection roles: web on WEB_DATABASE_URL (may be a transaction-mode pooler), the rest on a session.

The pooler here is Debian's PgBouncer in transaction mode (tests/pgbouncer.py) in front of the
test database: the behaviour of Supabase's transaction pooler on port 6543.
"""

from __future__ import annotations

import threading

import psycopg
import pytest

import config as settings
from viewzenix.db import Database
from viewzenix.runtime import build_runtime


def _hammer(db: Database, threads: int = 6, rounds: int = 25) -> list[BaseException]:
    """Run the same parameterised query from several threads, more often than psycopg's
    prepare threshold (5), each in its own transaction; return the errors seen."""
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(rounds):
                with db.transaction() as conn:
                    row = conn.execute("select %s::int + %s::int as total", (n, i)).fetchone()
                    assert row["total"] == n + i
        except BaseException as error:
            errors.append(error)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return errors


def test_a_pool_marked_as_behind_a_transaction_pooler_works_through_pgbouncer(pgbouncer_url):
    db = Database(pgbouncer_url, min_size=2, max_size=6, transaction_pooler=True).open()
    try:
        assert _hammer(db) == []
    finally:
        db.close()


def test_prepared_statements_break_behind_pgbouncer_in_transaction_mode(pgbouncer_url):
    """Why the web pool turns them off: the same load with psycopg's default prepare threshold
    fails (a statement prepared on one server connection is unknown, or already taken, on the next)."""
    db = Database(pgbouncer_url, min_size=2, max_size=6, transaction_pooler=False).open()
    try:
        errors = _hammer(db)
    finally:
        db.close()
    assert errors, "prepared statements unexpectedly survived transaction pooling"
    assert all(isinstance(e, psycopg.Error) for e in errors)
    assert any("prepared statement" in str(e) for e in errors)


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
