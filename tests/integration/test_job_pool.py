"""The worker's procrastinate pool (db.pools.ResilientAsyncPool): autocommit, checked after a failure.

A real pool on our real Postgres; a connection is cut with ``pg_terminate_backend``. psycopg_pool's
``check_connection`` is wrapped only to count its calls.
"""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

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


def test_a_connection_is_checked_only_after_one_came_back_broken(database_url, monkeypatch):
    checks: list[int] = []
    check = AsyncConnectionPool.check_connection

    async def counted(conn) -> None:  # type: ignore[no-untyped-def]
        checks.append(conn.info.backend_pid)
        await check(conn)

    monkeypatch.setattr(AsyncConnectionPool, "check_connection", staticmethod(counted))
    job_app = build_job_app(database_url, pool_size=2)

    async def pid_of(conn) -> int:  # type: ignore[no-untyped-def]
        return (await (await conn.execute("select pg_backend_pid()")).fetchone())[0]

    async def run() -> dict:
        seen: dict = {}
        async with job_app.open_async():
            pool = job_app.connector.pool
            for _ in range(3):  # a healthy pool: no check round trip before each borrow
                async with pool.connection() as one, pool.connection() as two:
                    pids = {await pid_of(one), await pid_of(two)}
            seen["checks while healthy"] = list(checks)
            with psycopg.connect(database_url, autocommit=True) as admin:  # a restart, as the pool sees it
                for pid in pids:
                    admin.execute("select pg_terminate_backend(%s)", (pid,))
            with pytest.raises(psycopg.OperationalError):  # the first query on a cut connection
                async with pool.connection() as conn:
                    await conn.execute("select 1")
            async with pool.connection() as conn:  # the other idle one is checked, replaced
                seen["answered by a new backend"] = await pid_of(conn) not in pids
            seen["checked after the failure"] = [pid for pid in checks if pid in pids]
            checks.clear()
            async with pool.connection() as conn:
                await conn.execute("select 1")
            seen["checks once healthy again"] = list(checks)
        return seen

    seen = asyncio.run(run())
    assert seen["checks while healthy"] == []
    assert seen["answered by a new backend"] is True
    assert len(seen["checked after the failure"]) == 1  # the idle one; the failed one was discarded
    assert seen["checks once healthy again"] == []
