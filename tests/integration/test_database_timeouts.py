"""Database timeouts (docs/database-timeouts.md): a wait on a lock held by another connection ends.

Each test holds a real lock in a second connection and shows that the web request answers 503
``database_busy`` (Retry-After, nothing stored) and that a job gives up with ``LockNotAvailable``,
is retried later and no longer holds its (config, symbol) lock, instead of waiting forever.
"""

from __future__ import annotations

import threading
import uuid

import psycopg
import pytest
from builders import worker_config

from config import load_config
from viewzenix.db import Database
from viewzenix.db.pools import SessionTimeouts
from viewzenix.runtime import session_timeouts


def while_locked(app, database_url, lock_sql, params, request, seconds=15.0):
    """Run ``request(client)`` while another connection holds ``lock_sql``; fail if it still waits.

    In a thread of its own (with its own test client), so a request that would wait forever
    ends the test instead of hanging it.
    """
    answers = []
    with psycopg.connect(database_url) as holder:
        holder.execute(lock_sql, params)
        thread = threading.Thread(target=lambda: answers.append(request(app.test_client())), daemon=True)
        thread.start()
        thread.join(seconds)
        holder.rollback()  # release the lock either way, so a hung request ends
    thread.join(seconds)
    if not answers:
        pytest.fail(f"the request still waited on the lock after {seconds} s")
    return answers[0]


ALERT = {"passphrase": "test-passphrase", "ticker": "SPY", "action": "buy", "price": 500}


def test_each_process_gets_its_own_documented_timeouts():
    config = load_config({})
    assert session_timeouts(config, "web") == SessionTimeouts(5000, 1000, 60000)
    assert session_timeouts(config, "session") == SessionTimeouts(60000, 10000, 60000)
    options = SessionTimeouts(5000, 1000, 60000).connect_kwargs(
        "postgresql://h/db?options=-c%20search_path%3Dx"
    )
    assert options == {
        "options": "-c search_path=x -c statement_timeout=5000 -c lock_timeout=1000"
        " -c idle_in_transaction_session_timeout=60000"
    }
    assert SessionTimeouts(0, 0, 0).connect_kwargs("postgresql://h/db") == {}


def test_connections_carry_the_timeouts(database_url):
    db = Database(database_url, max_size=1, timeouts=SessionTimeouts(1234, 567, 8900)).open()
    try:
        with db.transaction() as conn:
            row = conn.execute(
                "select current_setting('statement_timeout') as s, current_setting('lock_timeout') as l,"
                " current_setting('idle_in_transaction_session_timeout') as i"
            ).fetchone()
    finally:
        db.close()
    assert row == {"s": "1234ms", "l": "567ms", "i": "8900ms"}


def test_web_request_blocked_on_a_table_lock_answers_503_database_busy(app, client, db, database_url):
    client.post("/webhook", json=ALERT)  # the single-tenant config exists before the lock
    with db.transaction() as conn:
        before = conn.execute("select count(*) as n from public.signals").fetchone()["n"]
    # A SHARE lock (as CREATE INDEX takes): intake's insert must wait for it.
    response = while_locked(
        app,
        database_url,
        "lock table public.signals in share mode",
        (),
        lambda c: c.post("/webhook", json=ALERT),
    )
    assert response.status_code == 503
    assert response.json == {
        "code": "database_busy",
        "status": 503,
        "message": "A database lock or statement timeout ended the request; "
        "nothing was stored. Retry shortly.",
    }
    assert response.headers["Retry-After"] == "2"
    assert not app.extensions["viewzenix"].db.breaker.is_open  # a busy server is not a down one
    with db.transaction() as conn:
        assert conn.execute("select count(*) as n from public.signals").fetchone()["n"] == before
    assert client.post("/webhook", json=ALERT).status_code == 200  # the lock gone, it goes through


def test_web_request_blocked_on_a_row_lock_answers_503(app, client, db, database_url, auth_headers):
    created = client.post("/api/webhook-configs", json={"name": "locked"}, headers=auth_headers).json
    response = while_locked(
        app,
        database_url,
        "select 1 from public.webhook_configs where id = %s for update",
        (created["id"],),
        lambda c: c.patch(
            f"/api/webhook-configs/{created['id']}", json={"name": "renamed"}, headers=auth_headers
        ),
    )
    assert response.status_code == 503
    assert response.json["code"] == "database_busy"
    renamed = client.patch(
        f"/api/webhook-configs/{created['id']}", json={"name": "renamed"}, headers=auth_headers
    )
    assert renamed.status_code == 200 and renamed.json["name"] == "renamed"


def test_job_blocked_on_a_row_lock_gives_up_and_is_retried_later(client, db, database_url):
    from viewzenix.jobs import build_job_app
    from viewzenix.jobs.attempts import AttemptRecorder
    from viewzenix.jobs.tasks import register_tasks

    signal_id = client.post("/webhook", json=ALERT).json["signal_id"]
    with db.transaction() as conn:
        job_id = conn.execute("select job_id from public.signals where id = %s", (signal_id,)).fetchone()[
            "job_id"
        ]
        # Other tests' due jobs would run first; only this one matters here.
        conn.execute(
            "update procrastinate_jobs set scheduled_at = now() + interval '1 hour'"
            " where status = 'todo' and id <> %s",
            (job_id,),
        )
    timeouts = SessionTimeouts(statement_ms=5000, lock_ms=300, idle_in_transaction_ms=5000)
    worker_db = Database(database_url, max_size=2, timeouts=timeouts).open()
    job_app = build_job_app(database_url, timeouts)
    register_tasks(job_app, worker_db, worker_config())
    holder = psycopg.connect(database_url)
    holder.execute("select 1 from public.signals where id = %s for update", (uuid.UUID(signal_id),))
    worker = threading.Thread(
        target=lambda: job_app.run_worker(
            wait=False,
            install_signal_handlers=False,
            listen_notify=False,
            worker_middleware=[AttemptRecorder()],
        ),
        daemon=True,
    )
    try:
        worker.start()
        worker.join(20)
        blocked = worker.is_alive()
    finally:
        holder.rollback()
        holder.close()
        worker.join(20)
        worker_db.close()
    if blocked:
        pytest.fail("the job waited on the row lock for 20 s instead of giving up")
    with db.transaction() as conn:
        job = conn.execute(
            "select status, attempts, scheduled_at > now() as later from procrastinate_jobs where id = %s",
            (job_id,),
        ).fetchone()
        attempts = conn.execute(
            "select outcome, error_type, error from private.job_attempts where job_id = %s", (job_id,)
        ).fetchall()
        conn.execute(
            "update procrastinate_jobs set scheduled_at = now()"
            " where status = 'todo' and scheduled_at > now()"
        )
    # Back in the queue for a later attempt: its (config, symbol) lock is free meanwhile. Each
    # attempt gave up on the lock (the worker may live long enough, running the periodic tasks it
    # defers, to take the retry once more while the lock is still held: each is bounded alike).
    assert (job["status"], job["later"]) == ("todo", True)
    assert job["attempts"] == len(attempts) >= 1
    for attempt in attempts:
        assert attempt["outcome"] == "retrying"
        assert attempt["error_type"] == "LockNotAvailable"
        assert "lock timeout" in attempt["error"]


def _bounded(callable_, seconds=5.0):
    """Run ``callable_`` in a thread; return what it raised (or None), or fail if it still runs."""
    outcome: list = []

    def run():
        try:
            callable_()
            outcome.append(None)
        except Exception as exc:  # what the wait ended with is the point of the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    return thread, outcome


@pytest.mark.parametrize("how", ["transaction", "statement"])
def test_web_waits_behind_a_transaction_pooler_are_bounded(pgbouncer_url, database_url, how):
    """Behind PgBouncer in transaction mode (no libpq ``options``), a lock wait still ends."""
    table = f"public.pooler_lock_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as setup:
        setup.execute(f"create table {table} (id int primary key)")
    db = Database(
        pgbouncer_url, max_size=2, transaction_pooler=True, timeouts=SessionTimeouts(5000, 300, 60000)
    ).open()
    try:
        with db.transaction() as conn:
            row = conn.execute(
                "select current_setting('statement_timeout') as s, current_setting('lock_timeout') as l"
            ).fetchone()
        assert row == {"s": "5s", "l": "300ms"}

        def insert():
            with getattr(db, how)() as conn:
                conn.execute(f"insert into {table} values (1)")

        with psycopg.connect(database_url) as holder:
            holder.execute(f"lock table {table} in access exclusive mode")
            thread, outcome = _bounded(insert)
            holder.rollback()
        thread.join(5)
        assert outcome, "the insert still waited on the lock after 5 s"
        assert isinstance(outcome[0], psycopg.errors.LockNotAvailable), outcome
    finally:
        db.close()
        with psycopg.connect(database_url, autocommit=True) as setup:
            setup.execute(f"drop table {table}")
