"""Connection pools that fail fast while Postgres is away and recover within a second of its return.

psycopg_pool as it comes keeps handing out idle connections to a server that restarted (each fails
on first use) and re-opens lost connections with a doubling delay (1, 2, 4 … s up to minutes), so
a database back after a 10 s restart may go unused for many seconds. These subclasses change two
things, through psycopg_pool's documented ``check`` and ``configure`` hooks plus its backoff:

- (Sync pool) When a connection comes back to the pool broken (``conn.broken``), every connection made before
  that failure is checked once (an empty query, ``check_connection``) before its next use; in
  normal operation nothing is checked, so the hot path has no extra round trip.
- Lost connections are re-opened at most ``MAX_RECONNECT_DELAY`` seconds apart.

``FAIL_FAST_CONNECT_OPTIONS`` bound a dead or unreachable server on TCP (libpq ignores the TCP
ones on a Unix socket): ``connect_timeout`` for a new connection, keepalives and
``tcp_user_timeout`` for one whose peer vanished mid-request.

``SessionTimeouts`` bound a live server that does not answer: ``statement_timeout``,
``lock_timeout`` and ``idle_in_transaction_session_timeout``, sent once per connection as the
libpq ``options`` startup parameter (no round trip per transaction), or, behind a transaction
pooler that refuses ``options``, set per transaction (``viewzenix.db.Database``);
docs/database-timeouts.md.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from psycopg_pool.base import AttemptWithBackoff

MAX_RECONNECT_DELAY = 1.0  # seconds between attempts to re-open a lost connection
FAIL_FAST_CONNECT_OPTIONS: dict[str, Any] = {
    "connect_timeout": 2,  # seconds; libpq's minimum
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 1,
    "keepalives_count": 2,
    "tcp_user_timeout": 2500,  # ms of unacknowledged data before the connection is declared dead
}


def fail_fast_options(conninfo: str) -> dict[str, Any]:
    """Return the ``FAIL_FAST_CONNECT_OPTIONS`` that ``conninfo`` does not set itself."""
    return {k: v for k, v in FAIL_FAST_CONNECT_OPTIONS.items() if k not in conninfo}


@dataclass(frozen=True)
class SessionTimeouts:
    """Postgres timeouts of every connection a process opens, in milliseconds (0 = none).

    ``statement_ms``: one statement's run time (``QueryCanceled``, SQLSTATE 57014).
    ``lock_ms``: a wait for a row or table lock (``LockNotAvailable``, 55P03).
    ``idle_in_transaction_ms``: a transaction left open with nothing running; Postgres closes
    the connection (``IdleInTransactionSessionTimeout``, 25P03), releasing its locks.
    Postgres: "Server Configuration: Client Connection Defaults".
    """

    statement_ms: int = 0
    lock_ms: int = 0
    idle_in_transaction_ms: int = 0

    def settings(self) -> list[tuple[str, int]]:
        """Return the Postgres settings to apply, ``(name, milliseconds)``, leaving out those at 0."""
        return [
            (name, value)
            for name, value in (
                ("statement_timeout", self.statement_ms),
                ("lock_timeout", self.lock_ms),
                ("idle_in_transaction_session_timeout", self.idle_in_transaction_ms),
            )
            if value
        ]

    def connect_kwargs(self, conninfo: str) -> dict[str, Any]:
        """Return ``{"options": ...}`` for psycopg's connect, keeping any ``options`` of ``conninfo``.

        Empty when every timeout is 0 (nothing is sent, for poolers that refuse ``options``).
        """
        settings = [f"-c {name}={value}" for name, value in self.settings()]
        if not settings:
            return {}
        own = conninfo_to_dict(conninfo).get("options") if conninfo else None
        return {"options": " ".join([*([own] if own else []), *settings])}


class _CappedBackoff(AttemptWithBackoff):
    """psycopg_pool's reconnection backoff, its delay capped at ``MAX_RECONNECT_DELAY``."""

    def update_delay(self, now: float) -> None:
        super().update_delay(now)
        self.delay = min(self.delay, MAX_RECONNECT_DELAY)


class ResilientPool(ConnectionPool):
    """A ``ConnectionPool`` that re-checks its connections after a failure and reconnects promptly.

    Takes ``ConnectionPool``'s arguments except ``check`` and ``configure`` (used here).
    """

    def __init__(self, conninfo: str = "", **kwargs: Any) -> None:
        self._failures = 0
        super().__init__(conninfo, configure=self._mark, check=self._check_if_stale, **kwargs)

    def _mark(self, conn: Any) -> None:
        conn._viewzenix_epoch = self._failures

    def _check_if_stale(self, conn: Any) -> None:
        if getattr(conn, "_viewzenix_epoch", None) != self._failures:
            ConnectionPool.check_connection(conn)
            conn._viewzenix_epoch = self._failures

    def putconn(self, conn: Any) -> None:
        if conn.broken:
            self._failures += 1
        super().putconn(conn)

    def _add_connection(self, attempt: AttemptWithBackoff | None, growing: bool = False) -> None:
        super()._add_connection(attempt or _CappedBackoff(timeout=self.reconnect_timeout), growing)


class ResilientAsyncPool(AsyncConnectionPool):
    """An ``AsyncConnectionPool`` of autocommit connections, reconnecting promptly, with the
    fail-fast connect options.

    For procrastinate's worker (``PsycopgConnector(pool_factory=...)``), which checks every
    connection before use (``check=AsyncConnectionPool.check_connection``, an empty query): kept,
    because procrastinate does not act on a failed finish (the job would stay ``doing`` under a
    live worker), so a connection cut while idle must be replaced before it is used.

    **Autocommit**: every query procrastinate's connector runs on this pool is one statement
    (its ``procrastinate_*`` functions, our attempt record and fetch), and each borrows a
    connection for that one statement. Without autocommit psycopg wraps it in ``BEGIN`` …
    ``COMMIT``, two more round trips per statement, and the check toggles autocommit around
    its empty query: the frame of a signal job (fetch, attempt record, finish) was twelve
    round trips; with autocommit, and the record written by the finish (``jobs.attempts``),
    four. Set by ``configure`` (a ``configure`` passed in still runs, after it), not by the
    connect ``kwargs``: procrastinate opens its LISTEN connection with ``**kwargs, autocommit=True``.
    """

    def __init__(self, conninfo: str = "", **kwargs: Any) -> None:
        kwargs.setdefault("timeout", 5.0)
        kwargs["kwargs"] = {**fail_fast_options(conninfo), **(kwargs.get("kwargs") or {})}
        kwargs["configure"] = _autocommit_then(kwargs.get("configure"))
        super().__init__(conninfo, **kwargs)

    async def _add_connection(self, attempt: AttemptWithBackoff | None, growing: bool = False) -> None:
        await super()._add_connection(attempt or _CappedBackoff(timeout=self.reconnect_timeout), growing)


def _autocommit_then(configure: Callable[[Any], Awaitable[None]] | None) -> Callable[[Any], Awaitable[None]]:
    """Return an async pool ``configure`` that sets autocommit on, then runs ``configure``."""

    async def autocommit(conn: Any) -> None:
        await conn.set_autocommit(True)
        if configure is not None:
            await configure(conn)

    return autocommit
