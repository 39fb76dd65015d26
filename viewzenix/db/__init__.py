"""Postgres access: a connection pool and one transaction per request or job.

psycopg 3 + psycopg_pool. SQL lives in ``viewzenix.repositories``; this module only hands out
transactions. ``Database.transaction(claims=...)`` runs the transaction as Supabase's
``authenticated`` role with ``request.jwt.claims`` set, exactly as Supabase's REST layer does, so
Row-Level Security applies even if application code forgets a filter (Supabase: the ``postgres``
login role bypasses RLS, so a backend connected as it must switch role per transaction).

``Database.request_transaction(claims)`` opens an *ambient* transaction for the current context
(thread or task, via a contextvar): until it ends, every ``transaction()`` on the same Database
joins it as a savepoint instead of taking its own connection, so a whole HTTP request — the
services' work and the API's idempotency-key record — commits or rolls back as one.

When the database is down or unreachable, a request fails fast instead of hanging: a connection
is waited for at most ``timeout`` seconds (``psycopg_pool.PoolTimeout``), and the pool
(``viewzenix.db.pools.ResilientPool``) bounds connects and dead peers, re-checks its connections
after a failure and reconnects within a second of the database's return. The HTTP layer answers
``PoolTimeout`` and any ``psycopg.OperationalError`` with 503 ``database_unavailable``
(``viewzenix.errors``).

Once a connection could not be had (a pool timeout, or a connection lost mid-query), the
database is *known down* (``OutageBreaker``): for ``reprobe_seconds`` every transaction fails at
once with ``DatabaseDown`` instead of waiting the pool timeout again, so a gunicorn worker is
not held for 0.8 s per 503 while alerts keep coming. Then one caller probes (waits on the pool
up to ``PROBE_TIMEOUT_SECONDS``) while the others still fail fast; its success closes the
breaker. Lock and statement timeouts (a live, busy server) never open it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from psycopg_pool import PoolTimeout

from viewzenix.db.pools import ResilientPool, SessionTimeouts, fail_fast_options

logger = logging.getLogger(__name__)

Connection = psycopg.Connection[dict[str, Any]]


class PooledConnection(psycopg.Connection[dict[str, Any]]):
    """A connection of ``Database``'s pool: it carries an unflushed transaction's edges.

    ``Database._unflushed`` does not send its ``BEGIN`` at once: ``pending_begin`` holds the
    statements that open the transaction, and the first statement the block sends carries them in
    one pipeline (``PendingBeginCursor``), so the transaction's start costs no round trip of its
    own. ``ended`` is set once a block's last statements also sent the ``COMMIT``
    (``ending_transaction``); a statement after that is refused. Anything else that needs the
    transaction open (a savepoint, a named cursor) sends the pending ``BEGIN`` first; open
    savepoints are counted (``savepoints``), since a ``COMMIT`` inside one would end the whole
    transaction. Since the first statement goes in a pipeline (extended protocol), it must be one
    statement: a multi-statement string fails there ("cannot insert multiple commands into a
    prepared statement").
    """

    pending_begin: tuple[str, ...] | None = None
    unflushed: bool = False  # inside ``Database._unflushed``
    ended: bool = False
    savepoints: int = 0  # ``transaction()`` blocks open on this connection

    def send_pending_begin(self) -> None:
        """Send the pending ``BEGIN`` now, in one round trip (or queue it in an active pipeline)."""
        begin, self.pending_begin = self.pending_begin, None
        if begin is None:
            return
        if self.pgconn.pipeline_status:  # queued with the caller's pipeline block
            for sql in begin:
                psycopg.Cursor(self).execute(sql, prepare=False)
            return
        psycopg.Cursor(self).execute("; ".join(begin), prepare=False)  # one simple query

    @contextmanager
    def transaction(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        self.send_pending_begin()  # else psycopg, seeing no transaction, would open and commit its own
        self.savepoints += 1
        try:
            with super().transaction(*args, **kwargs) as transaction:
                yield transaction
        finally:
            self.savepoints -= 1

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("name") or (args and isinstance(args[0], str)):
            self.send_pending_begin()  # a server-side cursor declares itself in the transaction
        return super().cursor(*args, **kwargs)


class PendingBeginCursor(psycopg.Cursor[dict[str, Any]]):
    """The pool's cursor: a statement on a connection with a pending ``BEGIN`` sends it along.

    Outside a pipeline block the ``BEGIN``, the ``SET LOCAL`` settings and the statement go in one
    pipeline: one round trip where they took two. Inside one they are queued before the
    statement. A connection without a pending ``BEGIN`` (every one but an unflushed transaction's
    before its first statement) costs one attribute read. Raises ``psycopg.ProgrammingError`` for a
    statement after ``ending_transaction`` committed the transaction.
    """

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        conn = self.connection
        assert isinstance(conn, PooledConnection)
        if conn.ended:
            raise psycopg.ProgrammingError("a statement after the transaction's COMMIT was sent")
        if conn.pending_begin is None:
            return super().execute(query, params, **kwargs)
        if conn.pgconn.pipeline_status:
            conn.send_pending_begin()
            return super().execute(query, params, **kwargs)
        with conn.pipeline():
            conn.send_pending_begin()
            super().execute(query, params, **kwargs)
        return self

    def executemany(self, *args: Any, **kwargs: Any) -> None:
        self._open_first()
        super().executemany(*args, **kwargs)

    def copy(self, *args: Any, **kwargs: Any) -> Any:
        self._open_first()
        return super().copy(*args, **kwargs)

    def stream(self, *args: Any, **kwargs: Any) -> Any:
        self._open_first()
        return super().stream(*args, **kwargs)

    def _open_first(self) -> None:
        conn = self.connection
        assert isinstance(conn, PooledConnection)
        if conn.ended:
            raise psycopg.ProgrammingError("a statement after the transaction's COMMIT was sent")
        conn.send_pending_begin()


@dataclass
class _Ambient:
    """The open request transaction: its Database, connection, and the claims it runs as now."""

    database: Database
    conn: Connection
    claims: Mapping[str, Any] | None


PROBE_TIMEOUT_SECONDS = 0.1  # how long a re-probe of a database known down waits for a connection


class DatabaseDown(psycopg.OperationalError):
    """The database is known to be down (a connection failed moments ago); not waited on again yet."""


class OutageBreaker:
    """Fail fast while the database is known down; let one caller re-probe every ``reprobe_seconds``.

    ``check()`` before taking a connection (raises ``DatabaseDown`` while open), ``failed()``
    when a connection could not be had or was lost, ``succeeded()`` when one was had. Closed,
    ``check()`` reads one attribute: nothing on the hot path.
    """

    def __init__(self, reprobe_seconds: float) -> None:
        self.reprobe_seconds = reprobe_seconds
        self._open_until = 0.0  # time.monotonic() before which callers fail fast; 0 = closed
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._open_until != 0.0

    def check(self) -> bool:
        """Raise ``DatabaseDown`` while open; return True when this caller is to probe."""
        if not self._open_until:
            return False
        with self._lock:
            if not self._open_until:
                return False
            now = time.monotonic()
            if now < self._open_until:
                raise DatabaseDown("the database is down (a connection failed moments ago); retry shortly")
            self._open_until = now + self.reprobe_seconds  # this caller probes; others fail fast
            return True

    def failed(self) -> None:
        with self._lock:
            first = not self._open_until
            self._open_until = time.monotonic() + self.reprobe_seconds
        if first:
            logger.warning(
                "database down: answering at once without waiting, re-probing every %s s",
                self.reprobe_seconds,
                extra={"action": "database_breaker_open"},
            )

    def succeeded(self) -> None:
        if not self._open_until:
            return
        with self._lock:
            self._open_until = 0.0
        logger.info("database answers again", extra={"action": "database_breaker_closed"})


_ambient: ContextVar[_Ambient | None] = ContextVar("viewzenix_ambient_transaction", default=None)


class Database:
    """A psycopg connection pool handing out transactions.

    ``url``: a libpq connection string or URI. Connections use ``dict_row`` rows. ``timeout``:
    seconds a transaction waits for a connection before ``psycopg_pool.PoolTimeout`` (a
    ``psycopg.OperationalError``); the web answers 503 then, so it stays under TradingView's 3 s.
    ``transaction_pooler``: ``url`` may be a transaction-mode pooler (PgBouncer, Supavisor port
    6543): no prepared statements; everything here is transaction-scoped already (``set_config``
    with ``is_local``, ``pg_advisory_xact_lock``), and nothing may LISTEN on this pool. Such a
    pooler refuses (PgBouncer: "unsupported startup parameter: options") or drops the libpq
    ``options`` a session would carry, so there ``timeouts`` are set at the start of every
    transaction instead (``set_config(..., true)``, one more round trip), and ``statement()``
    runs its statement in such a transaction rather than in autocommit (docs/database-timeouts.md).
    ``timeouts``: the statement, lock and idle-in-transaction timeouts of every connection
    (``SessionTimeouts``; none by default). ``reprobe_seconds``: while the database is known
    down, how long callers fail fast with ``DatabaseDown`` before one tries again
    (``OutageBreaker``; 0 = never fail fast).
    """

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 30.0,
        transaction_pooler: bool = False,
        timeouts: SessionTimeouts | None = None,
        reprobe_seconds: float = 0.0,
    ) -> None:
        self.url = url
        # A transaction-mode pooler hands each transaction to any server connection: a statement
        # prepared on one is unknown on the next, so psycopg must not prepare (prepare_threshold=None).
        self.transaction_pooler = transaction_pooler
        prepare = {"prepare_threshold": None} if transaction_pooler else {}
        self.breaker = OutageBreaker(reprobe_seconds) if reprobe_seconds > 0 else None
        timeouts = timeouts or SessionTimeouts()
        session = {} if transaction_pooler else timeouts.connect_kwargs(url)
        # Behind a transaction pooler the timeouts go with each transaction (SET LOCAL semantics).
        local = timeouts.settings() if transaction_pooler else []
        self._local_timeouts_sql = (
            "select " + ", ".join(f"set_config('{name}', '{int(value)}', true)" for name, value in local)
            if local
            else None
        )
        # What opens ``_unflushed``'s transaction, sent with its first statement: no parameters,
        # our own constants.
        self._begin_unflushed = (
            "begin",
            "set local synchronous_commit = off",
            *(f"set local {name} = {int(value)}" for name, value in local),
        )
        self.pool = ResilientPool(
            url,
            connection_class=PooledConnection,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            kwargs={
                "row_factory": dict_row,
                "cursor_factory": PendingBeginCursor,
                "autocommit": False,
                **prepare,
                **fail_fast_options(url),
                **session,
            },
            open=False,
            name="viewzenix",
        )

    def open(self, wait: bool = True, timeout: float = 30.0) -> Database:
        self.pool.open(wait=wait, timeout=timeout)
        return self

    def close(self) -> None:
        self.pool.close()

    @contextmanager
    def transaction(
        self, claims: Mapping[str, Any] | None = None, *, without_flush: bool = False
    ) -> Iterator[Connection]:
        """Yield a connection inside one transaction; commit on success, roll back on error.

        With ``claims`` (verified JWT claims), the transaction runs as role ``authenticated``
        with ``request.jwt.claims`` set, so ``auth.uid()`` and RLS policies see the caller.
        psycopg cannot bind a parameter in ``SET LOCAL ROLE``; ``set_config`` is used instead.

        ``without_flush``: its COMMIT returns before the WAL flush (``commit_without_flush``:
        only where losing a suffix of commits equals an earlier crash of the caller). The
        transaction then starts with one round trip, ``BEGIN`` and the ``SET LOCAL`` sent as
        one simple query (``_unflushed``), where ``transaction()`` + ``commit_without_flush``
        take two. Inside a ``request_transaction()`` the setting is the request's whole
        transaction's (``set_config(..., true)`` outlives the savepoint).

        Inside ``request_transaction()`` on this Database, joins it instead: the block is a
        savepoint (an error rolls back only the block; success releases it, and the work commits
        with the request). A block asking for other claims (or none) runs as those until it
        ends, then the request's claims are restored.
        """
        ambient = _ambient.get()
        if ambient is not None and ambient.database is self:
            with self._join(ambient, claims) as conn:
                if without_flush:
                    commit_without_flush(conn)
                yield conn
            return
        if without_flush and claims is None:
            with self._unflushed() as conn:
                yield conn
            return
        with self.connection() as conn:
            with conn.transaction():
                self._begin(conn, claims)
                if without_flush:
                    commit_without_flush(conn)
                yield conn

    @contextmanager
    def _unflushed(self) -> Iterator[Connection]:
        """A transaction whose ``BEGIN`` and ``SET LOCAL synchronous_commit = off`` (and the
        timeouts behind a transaction pooler) go with its first statement; committed by ``COMMIT``,
        or by the block's ``ending_transaction`` with its last statements.

        The connection is in autocommit meanwhile, so psycopg sends no BEGIN of its own: the
        server's transaction block is the one the pending ``BEGIN`` opens (``PooledConnection``:
        a statement, savepoint or named cursor sends it first). A block that sent nothing costs no
        round trip. As with ``conn.transaction()``: an error rolls back and is re-raised (an error
        of the rollback itself is logged, not raised over it), ``raise psycopg.Rollback()`` rolls
        back quietly. A block whose transaction failed in the server (an error it caught) raises
        ``InFailedSqlTransaction`` rather than commit, since Postgres would answer that COMMIT with
        a silent ROLLBACK. A connection left in a transaction by a failure here is closed, never
        handed back to the pool in autocommit.
        """
        with self.connection() as conn:
            assert isinstance(conn, PooledConnection)
            conn.autocommit = True
            conn.unflushed = True
            conn.pending_begin = self._begin_unflushed
            try:
                try:
                    yield conn
                except BaseException as error:
                    conn.pending_begin = None
                    _roll_back_quietly(conn)
                    if isinstance(error, psycopg.Rollback):
                        return
                    raise
                if conn.pending_begin is not None or conn.ended:
                    return  # nothing was sent, or the last statements carried the COMMIT
                if conn.info.transaction_status == TransactionStatus.INERROR:
                    _roll_back_quietly(conn)
                    raise psycopg.errors.InFailedSqlTransaction(
                        "the transaction failed in the server; rolled back, not committed"
                    )
                conn.execute("commit")
            finally:
                conn.pending_begin = None
                conn.unflushed = conn.ended = False
                if not conn.closed:
                    if conn.info.transaction_status == TransactionStatus.IDLE:
                        conn.autocommit = False
                    else:  # a commit or rollback that did not complete: not reusable
                        conn.close()

    def _begin(self, conn: Connection, claims: Mapping[str, Any] | None) -> None:
        """Start a transaction of this pool: its timeouts behind a transaction pooler, the caller's claims."""
        if self._local_timeouts_sql is not None:
            conn.execute(self._local_timeouts_sql)
        if claims is not None:
            set_request_claims(conn, claims)

    @contextmanager
    def statement(self) -> Iterator[Connection]:
        """Yield a connection in autocommit mode: each statement is its own transaction.

        For a hot path written as one statement: one round trip, no BEGIN/COMMIT. Inside
        ``request_transaction()`` on this Database, joins it (a savepoint) like ``transaction()``.
        Behind a transaction pooler with timeouts, a transaction (``transaction()``) instead:
        autocommit leaves no transaction to carry them.
        """
        ambient = _ambient.get()
        if ambient is not None and ambient.database is self:
            with self._join(ambient, None) as conn:
                yield conn
            return
        if self._local_timeouts_sql is not None:
            with self.transaction() as conn:
                yield conn
            return
        with self.connection() as conn:
            conn.autocommit = True
            try:
                yield conn
            finally:
                if not conn.closed:
                    conn.autocommit = False

    @contextmanager
    def request_transaction(self, claims: Mapping[str, Any] | None = None) -> Iterator[Connection]:
        """Open the ambient transaction of this context; ``transaction()`` calls join it until it ends.

        Commits on success, rolls back on error; ``raise psycopg.Rollback()`` inside the block rolls
        back quietly. Raises RuntimeError when one is already open in this context.
        """
        if _ambient.get() is not None:
            raise RuntimeError("a request transaction is already open in this context")
        with self.connection() as conn:
            with conn.transaction():
                self._begin(conn, claims)
                token = _ambient.set(_Ambient(self, conn, claims))
                try:
                    yield conn
                finally:
                    _ambient.reset(token)

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """Yield a pooled connection, failing fast (``DatabaseDown``) while the database is known down.

        A pool timeout, or a connection that broke while in use, opens the breaker; having a
        connection closes it. Errors of a live server (a lock timeout, a constraint) do neither.
        """
        breaker = self.breaker
        if breaker is None:
            with self.pool.connection() as conn:
                yield conn
            return
        # A probe waits briefly: the pool re-opens connections in the background (within
        # MAX_RECONNECT_DELAY), so a probe only asks whether one is there yet.
        timeout = PROBE_TIMEOUT_SECONDS if breaker.check() else None
        conn = None
        try:
            with self.pool.connection(timeout=timeout) as conn:
                breaker.succeeded()
                yield conn
        except PoolTimeout:
            breaker.failed()
            raise
        except psycopg.OperationalError:
            if conn is not None and conn.broken:
                breaker.failed()
            raise

    @contextmanager
    def detached(self) -> Iterator[None]:
        """Leave the ambient request transaction for this block: ``transaction()`` takes its own.

        For work that must not run inside, nor roll back with, the request's transaction: effects
        outside Postgres (a broker call), and a write the answer reports as done even when the
        request is refused and rolled back (an approval's expiry, ``services.approvals``). Such
        work must be safe to repeat, since a retry of a request that failed after it runs it again.
        """
        token = _ambient.set(None)
        try:
            yield
        finally:
            _ambient.reset(token)

    @contextmanager
    def _join(self, ambient: _Ambient, claims: Mapping[str, Any] | None) -> Iterator[Connection]:
        outer = ambient.claims
        switch = _comparable(claims) != _comparable(outer)
        try:
            with ambient.conn.transaction():  # a savepoint
                if switch:
                    _apply_claims(ambient.conn, claims)
                    ambient.claims = claims
                yield ambient.conn
            # Released: the switch would outlive the block (SET LOCAL lasts until commit), undo
            # it. Rolled back to the savepoint: Postgres has already undone it.
            if switch:
                _apply_claims(ambient.conn, outer)
        finally:
            ambient.claims = outer

    def ping(self) -> bool:
        """Return True when the database answers ``select 1`` within the pool timeout."""
        try:
            with self.connection() as conn:
                conn.execute("select 1")
            return True
        except (psycopg.Error, TimeoutError, Exception) as exc:
            logger.warning("database ping failed: %s", exc, extra={"action": "db_ping_failed"})
            return False


# Transaction-local (``set_config(..., true)``), so it also holds behind a transaction pooler.
_COMMIT_WITHOUT_FLUSH = "select set_config('synchronous_commit', 'off', true)"


def commit_without_flush(conn: Connection) -> None:
    """Let the current transaction's COMMIT return before its WAL record is flushed to disk.

    ``synchronous_commit = off`` for this transaction only. A crash of Postgres (not of the
    client) can then lose it, together with every transaction committed after it and not yet
    flushed (the WAL is replayed in order, so the loss is always a suffix); any later
    synchronous commit on the same server flushes it first. Use only where losing that suffix
    equals a crash of the caller at an earlier moment (docs/scaling.md argues the signal job).
    One round trip; it saves the wait for the flush at COMMIT.
    """
    conn.execute(_COMMIT_WITHOUT_FLUSH)


@contextmanager
def ending_transaction(conn: Connection) -> Iterator[None]:
    """A pipeline block of the transaction's last statements; their answers are read after it.

    In an unflushed transaction (``Database.transaction(without_flush=True)``) the ``COMMIT`` is
    sent in the block: the last statements and the commit cost one round trip. A statement that
    fails raises when the block ends, the ``COMMIT`` behind it is not run (the pipeline is aborted
    up to its sync) and the transaction rolls back; a transaction the server had failed before
    (an error the block caught) raises ``InFailedSqlTransaction``, never reports a ROLLBACK as a
    commit. Any statement after the block raises ``psycopg.ProgrammingError``. Elsewhere (a
    transaction psycopg opened, a request's savepoint, a savepoint inside the unflushed
    transaction) it is a plain pipeline block, and the transaction commits where its own block
    ends; so it does when the transaction has sent nothing yet (there is nothing to commit).
    """
    unflushed = isinstance(conn, PooledConnection) and conn.unflushed and conn.savepoints == 0
    committing = None
    with conn.pipeline():
        yield
        if unflushed and conn.pending_begin is None:  # still pending: the transaction sent nothing
            committing = psycopg.Cursor(conn).execute("commit", prepare=False)
    if committing is None:
        return
    assert isinstance(conn, PooledConnection)
    conn.ended = True
    if committing.statusmessage != "COMMIT":  # Postgres ends a failed transaction with ROLLBACK
        raise psycopg.errors.InFailedSqlTransaction(
            "the transaction failed in the server; rolled back, not committed"
        )


def _roll_back_quietly(conn: Connection) -> None:
    """Roll back the server's transaction block, if any; log, do not raise, a failure to."""
    if conn.closed or conn.info.transaction_status == TransactionStatus.IDLE:
        return
    try:
        conn.execute("rollback")
    except psycopg.Error as error:
        logger.warning("rollback failed: %s", error, extra={"action": "db_rollback_failed"})


def set_request_claims(conn: Connection, claims: Mapping[str, Any], role: str = "authenticated") -> None:
    """Switch the current transaction to ``role`` with ``request.jwt.claims`` = ``claims``.

    Transaction-local (``set_config(..., true)``): both reset at commit or rollback.
    """
    conn.execute(
        "select set_config('role', %(role)s, true), set_config('request.jwt.claims', %(claims)s, true)",
        {"role": role, "claims": json.dumps(dict(claims), default=str)},
    )


def _comparable(claims: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if claims is None else dict(claims)


def _apply_claims(conn: Connection, claims: Mapping[str, Any] | None) -> None:
    """Run the rest of the transaction as ``claims`` (role ``authenticated``), or as the login role."""
    if claims is not None:
        set_request_claims(conn, claims)
    else:
        # role 'none' = back to the session's login role, as after RESET ROLE.
        conn.execute("select set_config('role', 'none', true), set_config('request.jwt.claims', '', true)")
