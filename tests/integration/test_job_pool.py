"""The worker's procrastinate pool (db.pools.ResilientAsyncPool): autocommit, checked before use.

A real pool on our real Postgres; a connection is cut with ``pg_terminate_backend``.
"""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from viewzenix.jobs import build_job_app

pytestmark = pytest.mark.db


def test_each_statement_runs_in_autocommit(database_url):
    """No BEGIN/COMMIT round trips around procrastinate's one-statement queries."""
    job_app = build_job_app(database_url, pool_size=1)

    async def borrow() -> tuple[bool, tuple[str, str]]:
        async with job_app.open_async():
            async with job_app.connector.pool.connection() as conn:
                before = conn.info.transaction_status.name
                await conn.execute("select 1")
                return conn.autocommit, (before, conn.info.transaction_status.name)

    assert asyncio.run(borrow()) == (True, ("IDLE", "IDLE"))


def test_an_idle_connection_cut_by_the_server_is_replaced_before_it_is_used(database_url):
    """The check before every borrow stays: procrastinate does not act on a failed finish."""
    job_app = build_job_app(database_url, pool_size=1)

    async def pid_of(conn) -> int:  # type: ignore[no-untyped-def]
        return (await (await conn.execute("select pg_backend_pid()")).fetchone())[0]

    async def run() -> tuple[int, int]:
        async with job_app.open_async():
            pool = job_app.connector.pool
            async with pool.connection() as conn:
                cut = await pid_of(conn)
            with psycopg.connect(database_url, autocommit=True) as admin:  # waits for the backend to end
                assert admin.execute("select pg_terminate_backend(%s, 5000)", (cut,)).fetchone()[0]
            async with pool.connection() as conn:  # no error: checked, replaced
                return cut, await pid_of(conn)

    cut, answered = asyncio.run(run())
    assert answered != cut
