"""Postgres access: a connection pool and one transaction per request or job.

psycopg 3 + psycopg_pool. SQL lives in ``viewzenix.repositories``; this module only hands out
transactions. ``Database.transaction(claims=...)`` runs the transaction as Supabase's
``authenticated`` role with ``request.jwt.claims`` set, exactly as Supabase's REST layer does, so
Row-Level Security applies even if application code forgets a filter (Supabase: the ``postgres``
login role bypasses RLS, so a backend connected as it must switch role per transaction).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

logger = logging.getLogger(__name__)

Connection = psycopg.Connection[dict[str, Any]]


class Database:
    """A psycopg connection pool handing out transactions.

    ``url``: a libpq connection string or URI. Connections use ``dict_row`` rows.
    """

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self.pool = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            kwargs={"row_factory": dict_row, "autocommit": False},
            open=False,
            name="viewzenix",
        )

    def open(self, wait: bool = True, timeout: float = 30.0) -> Database:
        self.pool.open(wait=wait, timeout=timeout)
        return self

    def close(self) -> None:
        self.pool.close()

    @contextmanager
    def transaction(self, claims: Mapping[str, Any] | None = None) -> Iterator[Connection]:
        """Yield a connection inside one transaction; commit on success, roll back on error.

        With ``claims`` (verified JWT claims), the transaction runs as role ``authenticated``
        with ``request.jwt.claims`` set, so ``auth.uid()`` and RLS policies see the caller.
        psycopg cannot bind a parameter in ``SET LOCAL ROLE``; ``set_config`` is used instead.
        """
        with self.pool.connection() as conn:
            with conn.transaction():
                if claims is not None:
                    set_request_claims(conn, claims)
                yield conn

    def ping(self) -> bool:
        """Return True when the database answers ``select 1`` within the pool timeout."""
        try:
            with self.pool.connection(timeout=2.0) as conn:
                conn.execute("select 1")
            return True
        except (psycopg.Error, TimeoutError, Exception) as exc:
            logger.warning("database ping failed: %s", exc, extra={"action": "db_ping_failed"})
            return False


def set_request_claims(conn: Connection, claims: Mapping[str, Any], role: str = "authenticated") -> None:
    """Switch the current transaction to ``role`` with ``request.jwt.claims`` = ``claims``.

    Transaction-local (``set_config(..., true)``): both reset at commit or rollback.
    """
    conn.execute(
        "select set_config('role', %(role)s, true), set_config('request.jwt.claims', %(claims)s, true)",
        {"role": role, "claims": json.dumps(dict(claims), default=str)},
    )
