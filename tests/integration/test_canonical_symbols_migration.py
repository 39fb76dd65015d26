"""Migration 20261206160100_canonical_symbols.sql: books written before canonical symbols.

A position held as TradingView's ``BTCUSD`` must be the one execution finds under ``BTC/USD``
after the upgrade; the migration's SQL rule must be ``domain.symbols.canonical_symbol``.
Each test runs the migration's text in a transaction it rolls back (the shared test database
keeps its rows).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from builders import add_config
from psycopg.rows import dict_row

from viewzenix.domain.symbols import canonical_symbol
from viewzenix.repositories import positions as positions_repo

MIGRATION = (
    Path(__file__).resolve().parents[2] / "supabase" / "migrations" / "20261206160100_canonical_symbols.sql"
)
SPELLINGS = [
    "BTCUSD",
    "BTC-USD",
    "btc/usd",
    "BTC/USD",
    "ETHUSDT",
    "SOLUSDC",
    "DOGEBUSD",
    "ETHBTC",
    "LINKETH",
    "BTCUSDT.P",
    "AAPL",
    "GOOGL",
    "BRK.B",
    "SPY",
    "XUSD",
    "ABCDEF",
    "A-B/USD",
    " btcusd ",
]


@pytest.fixture()
def conn(database_url):
    with psycopg.connect(database_url, row_factory=dict_row) as connection:
        yield connection
        connection.rollback()


def test_the_migrations_rule_is_canonical_symbol(conn):
    body = MIGRATION.read_text()
    function = body[body.index("create or replace function") : body.index("$$;") + 3]
    conn.execute(function)
    for spelling in SPELLINGS:
        row = conn.execute("select pg_temp.canonical_symbol(%s) as s", (spelling,)).fetchone()
        assert row["s"] == canonical_symbol(spelling), spelling


def _position(conn, config, symbol, qty, table="public.positions"):
    user = ", user_id" if table == "public.positions" else ""
    values = ", %(user_id)s" if user else ""
    conn.execute(
        f"insert into {table} (config_id, symbol, qty, avg_entry_price{user})"
        f" values (%(config_id)s, %(symbol)s, %(qty)s, 100{values})",
        {"config_id": config["id"], "user_id": config["user_id"], "symbol": symbol, "qty": qty},
    )


def test_a_position_held_as_btcusd_is_found_under_btc_usd_after_the_migration(conn):
    held = add_config(conn)
    _position(conn, held, "BTCUSD", Decimal("0.5"))
    _position(conn, held, "BTC/USD", 0)  # the new code's empty first look, before the migration
    _position(conn, held, "ETHUSD", Decimal(2), table="paper.positions")
    _position(conn, held, "AAPL", Decimal(3))
    both = add_config(conn)  # two non-empty rows of one instrument: left for a person
    _position(conn, both, "BTCUSD", Decimal(1))
    _position(conn, both, "BTC/USD", Decimal(2))

    conn.execute(MIGRATION.read_text())

    position = positions_repo.lock(conn, config_id=held["id"], user_id=held["user_id"], symbol="BTC/USD")
    assert position.qty == Decimal("0.5")
    symbols = lambda table, config: sorted(  # noqa: E731
        r["symbol"] for r in conn.execute(f"select symbol from {table} where config_id = %s", (config["id"],))
    )
    assert symbols("public.positions", held) == ["AAPL", "BTC/USD"]
    assert symbols("paper.positions", held) == ["ETH/USD"]
    assert symbols("public.positions", both) == ["BTC/USD", "BTCUSD"]
