"""Builders for the database tests: users, webhook configs and signals made the way the app makes them.

Import as ``from builders import make_config, store_signal`` (``tests/`` is on ``sys.path``
because ``tests/conftest.py`` lives there). Every builder makes fresh rows for a new user, so
tests never share rows.

Two flavours where a test needs them:

- ``make_config`` / ``store_signal`` commit in their own transaction (``db.transaction()``);
- ``add_config`` / ``add_signal`` write on a connection the test already holds, inside its
  transaction, next to other rows it writes there.

The readers (``orders_of``, ``position_of``, ``held`` …) each read in a transaction of their own,
so they see what has been committed. ``config`` is a ``webhook_configs`` row (a dict, as
``make_config`` returns) or a ledger ``Book``: both name one config.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from config import Config, load_config
from viewzenix.db import Connection, Database
from viewzenix.domain.model import Signal
from viewzenix.domain.parsing import signal_to_dict
from viewzenix.jobs import build_job_app, defer_execute_signal
from viewzenix.repositories import accounts as accounts_repo
from viewzenix.repositories import orders as orders_repo
from viewzenix.repositories import positions as positions_repo
from viewzenix.repositories import signals as signals_repo
from viewzenix.repositories import webhook_configs as configs_repo
from viewzenix.services.execution import execute_signal
from viewzenix.services.ledger import Book

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # a Monday, 10:00 in New York


def clock() -> datetime:
    """The tests' clock: always ``NOW``."""
    return NOW


# --- configs -------------------------------------------------------------------------------


def add_config(conn: Connection, *, name: str = "paper", **settings: Any) -> dict[str, Any]:
    """Create a new user and one webhook config of theirs on ``conn``; return the config row.

    ``settings`` are config columns (``starting_cash``, ``commission_rate``, …); the rest take
    their defaults (broker ``simulated``). The token is random and never used.
    """
    user_id = uuid.uuid4()
    configs_repo.ensure_user(conn, user_id, f"{user_id.hex[:10]}@example.test")
    return configs_repo.insert(
        conn,
        user_id=user_id,
        token_hash=os.urandom(32),
        token_hint="test",
        values={"name": name, **settings},
    )


def make_config(db: Database, *, name: str = "paper", **settings: Any) -> dict[str, Any]:
    """``add_config`` in a transaction of its own, committed: a new user and config row."""
    with db.transaction() as conn:
        return add_config(conn, name=name, **settings)


# --- signals -------------------------------------------------------------------------------


def add_signal(
    conn: Connection,
    config: dict[str, Any],
    signal: Signal | dict[str, Any],
    *,
    signal_id: uuid.UUID | None = None,
    job_id: int | None = None,
) -> uuid.UUID:
    """Store an ``accepted`` signal of ``config`` on ``conn`` the way intake does; return its id.

    ``signal`` is a ``Signal`` (stored as ``signal_to_dict`` renders it) or an already rendered
    dict, which may lack fields (its ``ticker``/``action`` columns are then null). ``job_id`` is
    the procrastinate job the signal belongs to (none by default).
    """
    signal_id = signal_id or uuid.uuid4()
    data = signal if isinstance(signal, dict) else signal_to_dict(signal)
    signals_repo.insert(
        conn,
        signal_id=signal_id,
        user_id=config["user_id"],
        config_id=config["id"],
        status="accepted",
        raw_body="{}",
        content_type="application/json",
        source_ip=None,
        signal=data,
        ticker=data.get("ticker"),
        action=data.get("action"),
        job_id=job_id,
    )
    return signal_id


def store_signal(
    db: Database,
    config: dict[str, Any],
    signal: Signal | dict[str, Any],
    *,
    job_id: int | None = None,
) -> uuid.UUID:
    """``add_signal`` in a transaction of its own, committed; return the new signal's id."""
    with db.transaction() as conn:
        return add_signal(conn, config, signal, job_id=job_id)


def enqueue_signal(db: Database, database_url: str, config: dict[str, Any], signal: Signal) -> uuid.UUID:
    """Store ``signal`` with its job deferred, in one transaction, as intake accepts an alert.

    The job (``execute_signal``, locked on the signal's symbol) waits in the queue for a worker;
    return the signal's id.
    """
    signal_id = uuid.uuid4()
    with db.transaction() as conn:
        job_id = defer_execute_signal(
            build_job_app(database_url),
            conn,
            signal_id=signal_id,
            config_id=config["id"],
            symbol=signal.ticker,
        )
        add_signal(conn, config, signal, signal_id=signal_id, job_id=job_id)
    return signal_id


def run_signal(
    db: Database,
    config: dict[str, Any],
    signal: Signal,
    *,
    expect: str | None = None,
    **execute_kwargs: Any,
) -> uuid.UUID:
    """Store ``signal`` and execute it once (``execute_signal``); return the signal's id.

    The clock is ``clock`` (``NOW``) and the broker the config's own (paper) unless
    ``execute_kwargs`` say otherwise (``clock=``, ``brokers=``, ``job_id=``). With ``expect``,
    assert that the run ended in that status (``"executed"``, …).
    """
    signal_id = store_signal(db, config, signal)
    status = execute_signal(db, signal_id, **{"clock": clock, **execute_kwargs})
    if expect is not None:
        assert status == expect, f"signal {signal_id} ended {status!r}, not {expect!r}"
    return signal_id


def trade(db: Database, config: dict[str, Any], signal: Signal, **run_kwargs: Any) -> dict[str, Any]:
    """``run_signal`` (same keywords), for a signal that makes exactly one order: return that order.

    Fails (unpacking) when the signal made no order or more than one.
    """
    [order] = orders_of(db, run_signal(db, config, signal, **run_kwargs))
    return order


# --- reading our books ---------------------------------------------------------------------


def signal_row(db: Database, signal_id: uuid.UUID) -> dict[str, Any]:
    """The stored signal row (status, outcome_message, …)."""
    with db.transaction() as conn:
        return signals_repo.get(conn, signal_id)


def orders_of(db: Database, signal_id: uuid.UUID) -> list[dict[str, Any]]:
    """Our orders of one signal, in the order ``orders_repo.for_signal`` lists them."""
    with db.transaction() as conn:
        return orders_repo.for_signal(conn, signal_id)


def order_fills(db: Database, order_id: uuid.UUID) -> list[dict[str, Any]]:
    """Our fills of one order."""
    with db.transaction() as conn:
        return orders_repo.fills_for(conn, order_id)


def order_events(db: Database, order_id: uuid.UUID) -> list[str]:
    """The event types of one order, oldest first (``OrderInitialized``, ``OrderSubmitted`` …)."""
    with db.transaction() as conn:
        return [e["event_type"] for e in orders_repo.events_for(conn, order_id)]


def config_id_of(config: dict[str, Any] | Book) -> uuid.UUID:
    """The id of the config a config row or a ledger ``Book`` names."""
    return config.config_id if isinstance(config, Book) else config["id"]


def position_of(db: Database, config: dict[str, Any] | Book, symbol: str = "AAPL") -> dict[str, Any] | None:
    """Our position row of ``symbol`` in ``config``'s account, a flat one included; None if none."""
    with db.transaction() as conn:
        rows = positions_repo.list_for(conn, config_id=config_id_of(config), include_flat=True)
    return next((r for r in rows if r["symbol"] == symbol), None)


def held(db: Database, config: dict[str, Any] | Book, symbol: str = "AAPL") -> Decimal:
    """The quantity of ``symbol`` we hold (negative short): 0 when flat or never traded."""
    found = position_of(db, config, symbol)
    return Decimal(0) if found is None else found["qty"]


def summary(db: Database, config: dict[str, Any] | Book) -> dict[str, Any]:
    """Our account summary of ``config`` (cash, equity, realized_pnl, commission_paid, …)."""
    with db.transaction() as conn:
        return accounts_repo.summary(conn, config_id_of(config))


def signals_of_status(db: Database, config: dict[str, Any], status: str) -> list[uuid.UUID]:
    """Return the ids of the config's signals in ``status``, oldest first."""
    with db.transaction() as conn:
        rows = conn.execute(
            "select id from public.signals where config_id = %s and status = %s order by received_at, id",
            (config["id"], status),
        ).fetchall()
    return [row["id"] for row in rows]


# --- databases ---------------------------------------------------------------------------


def fresh_database(server_url: str, name: str, *, migrate: bool = True) -> str:
    """Drop and create database ``name`` on ``server_url``'s server; migrate it; return its URL."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from viewzenix.db.migrate import apply_migrations

    params = conninfo_to_dict(server_url)
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'drop database if exists "{name}" with (force)')
        admin.execute(f'create database "{name}"')
    params["dbname"] = name
    url = make_conninfo(**params)
    if migrate:
        apply_migrations(url)
    return url


def worker_config() -> Config:
    """The ``config.Config`` an in-process test worker registers its tasks with.

    The process's own config (``load_config()``), but with no reconciliation schedule: its
    development default (every 15 min) would otherwise reconcile every config in the shared
    test database inside whichever test's worker first runs after a quarter-hour tick, which
    can outlast that test's wait. The worker-process helpers set ``RECONCILE_CRON=""`` too.
    """
    config = load_config()
    config.RECONCILE_CRON = ""
    return config
