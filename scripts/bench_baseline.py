"""The baseline ``scripts/bench.py`` compares intake with: bare Flask doing one INSERT per POST.

Serve with the same gunicorn settings as the app (``bench.py`` does this)::

    DATABASE_URL=... gunicorn 'bench_baseline:create_app()' --config gunicorn.conf.py \
        --pythonpath scripts

``POST /baseline`` reads the raw body and runs ``insert into bench_baseline(body) values (%s)``
through a psycopg_pool pool (same ``DB_POOL_MIN_SIZE``/``DB_POOL_MAX_SIZE`` as the app), one
transaction, then answers 200 ``{"status": "accepted"}``. ``GET /healthz`` answers 200. The table
is created by ``bench.py`` (``CREATE_TABLE``) before the server starts.
"""

from __future__ import annotations

import os

from flask import Flask, request
from psycopg_pool import ConnectionPool

CREATE_TABLE = (
    "create table if not exists bench_baseline "
    "(id bigint generated always as identity primary key, body text not null, "
    "received_at timestamptz not null default now())"
)


def create_app() -> Flask:
    """Build the baseline app (gunicorn calls this in each worker); the pool opens lazily."""
    pool = ConnectionPool(
        os.environ["DATABASE_URL"],
        min_size=int(os.environ.get("DB_POOL_MIN_SIZE") or 1),
        max_size=int(os.environ.get("DB_POOL_MAX_SIZE") or 10),
        open=False,
        name="bench_baseline",
    )
    pool.open(wait=False)
    app = Flask(__name__)
    app.extensions["bench_baseline_pool"] = pool  # for scripts/bench_intake.py (its backend's CPU)

    @app.post("/baseline")
    def baseline():
        body = request.get_data(as_text=True)
        with pool.connection() as conn:
            conn.execute("insert into bench_baseline (body) values (%s)", (body,))
        return {"status": "accepted"}, 200

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}, 200

    return app
