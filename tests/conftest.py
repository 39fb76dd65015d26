"""Shared fixtures: a real Postgres (embedded, or the server in DATABASE_URL), the app, users.

The session creates a fresh database ``viewzenix_test`` on that server and applies the
migrations from ``supabase/migrations/`` (plus the plain-Postgres bootstrap), exactly as ``make run``
does. Tests never share rows: each one makes its own users and configs.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from builders import fresh_database, worker_config

from config import TestingConfig
from viewzenix.db import Database

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
TEST_DB = "viewzenix_test"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a freshly created, migrated test database."""
    server_url = os.environ.get("DATABASE_URL")
    handle = None
    if not server_url:
        from viewzenix.db.embedded import start_embedded

        server_url, handle = start_embedded(ROOT / ".data" / "test")
    yield fresh_database(server_url, TEST_DB)
    del handle  # the embedded server stops when the session's process exits


@pytest.fixture(scope="session")
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url, min_size=1, max_size=5).open()
    yield database
    database.close()


@pytest.fixture(scope="session")
def pgbouncer_url(database_url: str) -> Iterator[str]:
    """The test database through PgBouncer in transaction mode (tests/pgbouncer.py), stopped at the end.

    Skipped without Debian's pgbouncer, unless VIEWZENIX_TEST_PGBOUNCER=1 asks for it (make
    test-pgbouncer, .ci/run): then a missing pgbouncer is an error.
    """
    from tests import pgbouncer

    if not pgbouncer.available():
        if os.environ.get("VIEWZENIX_TEST_PGBOUNCER") == "1":
            pytest.fail(
                "VIEWZENIX_TEST_PGBOUNCER=1 but pgbouncer is not installed (apt-get install pgbouncer)"
            )
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer)")
    url, stop = pgbouncer.start_pgbouncer(database_url)
    yield url
    stop()


@pytest.fixture(scope="session")
def web_database_url(request: pytest.FixtureRequest, database_url: str) -> str:
    """What the app's web pool uses: the test database, or PgBouncer in transaction mode in front
    of it when VIEWZENIX_TEST_PGBOUNCER=1 (``make test-pgbouncer``)."""
    if os.environ.get("VIEWZENIX_TEST_PGBOUNCER") == "1":
        return request.getfixturevalue("pgbouncer_url")
    return database_url


@pytest.fixture(scope="session")
def app(database_url: str, web_database_url: str, tmp_path_factory: pytest.TempPathFactory):
    """The Flask app on the test database, in local auth mode (pytest-flask uses it for ``client``).

    Its web pool goes through PgBouncer (transaction mode) under ``make test-pgbouncer``.
    """
    from viewzenix import create_app

    data_dir = tmp_path_factory.mktemp("data")
    config = TestingConfig(
        {
            "DATABASE_URL": database_url,
            "WEB_DATABASE_URL": web_database_url if web_database_url != database_url else "",
            "DATA_DIR": str(data_dir),
            "WEBHOOK_PASSPHRASE": "test-passphrase",
            "PUBLIC_BASE_URL": "http://testserver",
        }
    )
    app = create_app(config)
    yield app
    app.extensions["viewzenix"].close()


@pytest.fixture()
def make_user(app):
    """Return a factory: ``make_user() -> (user_id, bearer_token)`` for a new local user."""
    from viewzenix.cli import ensure_local_user

    def factory(email: str | None = None) -> tuple[uuid.UUID, str]:
        runtime = app.extensions["viewzenix"]
        email = email or f"user-{uuid.uuid4().hex[:10]}@example.test"
        user_id = ensure_local_user(runtime.db, email)
        return user_id, runtime.local_signer.issue(user_id, email)

    return factory


@pytest.fixture()
def auth_headers(make_user):
    """Headers carrying a fresh user's bearer token."""
    _, token = make_user()
    return {"Authorization": f"Bearer {token}"}


def run_jobs(database_url: str, db: Database, concurrency: int = 1) -> None:
    """Run every due job to completion in this process (procrastinate worker, wait=False).

    A worker with ``wait=False`` stops as soon as no job can be fetched — also when the only
    jobs left wait for a lock held by a running one — so it is run again until none is left.
    """
    from viewzenix.jobs import build_job_app
    from viewzenix.jobs.attempts import AttemptRecorder
    from viewzenix.jobs.tasks import register_tasks

    job_app = build_job_app(database_url)
    register_tasks(job_app, db, worker_config())
    for _ in range(100):
        job_app.run_worker(
            wait=False,
            install_signal_handlers=False,
            listen_notify=False,
            concurrency=concurrency,
            worker_middleware=[AttemptRecorder()],
        )
        with db.transaction() as conn:
            # Due jobs only: a retry scheduled for later (a notification service that is down)
            # is not run by this call.
            left = conn.execute(
                "select count(*) as n from procrastinate_jobs where status = 'doing'"
                " or (status = 'todo' and (scheduled_at is null or scheduled_at <= now()))"
            ).fetchone()["n"]
        if not left:
            return
    raise AssertionError(f"{left} jobs still pending after 100 worker runs")


@pytest.fixture()
def jobs(database_url: str, db: Database):
    """Return a callable that runs all pending jobs (the worker, in-process)."""
    return lambda concurrency=1: run_jobs(database_url, db, concurrency)


SOURCE_DB = "viewzenix_test_source"


@pytest.fixture(scope="session")
def source_database_url(database_url: str) -> Iterator[str]:
    """URL of a second, separate database on the same server: the app's project (A) in a
    two-project setup. Gets the plain-Postgres bootstrap (auth.users stand-in) and the app's
    ``public.user_symbols`` (``supabase/user_symbols.sql``), none of our migrations."""
    url = fresh_database(database_url, SOURCE_DB, migrate=False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute((ROOT / "viewzenix" / "db" / "bootstrap.sql").read_text())
        conn.execute((ROOT / "supabase" / "user_symbols.sql").read_text())
    yield url


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Every test starts with empty intake rate-limit counters (in memory, per process): a test
    that builds its own app must not inherit the failed hits earlier tests made this minute."""
    from viewzenix.webhooks import limits

    limits.reset()
