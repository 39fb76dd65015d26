"""Specification of the trading session rules: the US equity close, and crypto's lack of one."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from viewzenix.domain.sessions import is_crypto, last_session_close, session_close_after


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "close"),
    [
        (utc(2026, 11, 23, 21, 0), utc(2026, 11, 23, 21, 0)),  # Monday 16:00 New York (EST) exactly
        (utc(2026, 11, 23, 20, 59), utc(2026, 11, 20, 21, 0)),  # Monday 15:59: Friday's close
        (utc(2026, 11, 24, 3, 0), utc(2026, 11, 23, 21, 0)),  # Monday 22:00 New York
        (utc(2026, 11, 22, 12, 0), utc(2026, 11, 20, 21, 0)),  # Sunday: Friday's close
        (utc(2026, 7, 15, 20, 30), utc(2026, 7, 15, 20, 0)),  # summer (EDT): 16:00 is 20:00 UTC
        (utc(2026, 11, 2, 20, 30), utc(2026, 10, 30, 20, 0)),  # first Monday of EST, 15:30 New York
    ],
)
def test_the_last_close_is_16_00_new_york_on_the_latest_session_not_after_now(now, close):
    assert last_session_close(now) == close


@pytest.mark.parametrize(
    "symbol", ["BTCUSD", "ETHUSDT", "BTC/USD", "BINANCE:BTCUSDT", "BTCUSDT.P", "SOLUSDC", "ETHBTC"]
)
def test_crypto_pairs_have_no_session(symbol):
    assert is_crypto(symbol)


@pytest.mark.parametrize("symbol", ["AAPL", "GOOGL", "NASDAQ:AAPL", "BRK.B", "USD", "SPY"])
def test_us_equities_have_a_session(symbol):
    assert not is_crypto(symbol)


# --- holidays and early closes (exchange_calendars, XNYS) -----------------------------------


def test_thanksgiving_has_no_close_so_the_last_close_is_wednesdays():
    assert last_session_close(utc(2026, 11, 26, 22, 0)) == utc(2026, 11, 25, 21, 0)


def test_the_day_after_thanksgiving_closes_at_13_00_new_york():
    assert last_session_close(utc(2026, 11, 27, 18, 0)) == utc(2026, 11, 27, 18, 0)
    assert session_close_after(utc(2026, 11, 27, 15, 0), "AAPL") == utc(2026, 11, 27, 18, 0)


def test_an_order_placed_on_a_holiday_belongs_to_the_next_session():
    assert session_close_after(utc(2026, 11, 26, 15, 0), "AAPL") == utc(2026, 11, 27, 18, 0)


def test_an_order_placed_after_the_close_belongs_to_the_next_session():
    assert session_close_after(utc(2026, 11, 23, 21, 0), "AAPL") == utc(2026, 11, 24, 21, 0)


def test_other_markets_close_on_their_own_calendar():
    assert session_close_after(utc(2026, 11, 23, 9, 0), "LSE:VOD") == utc(2026, 11, 23, 16, 30)


def test_crypto_never_closes():
    assert session_close_after(utc(2026, 11, 27, 15, 0), "BTCUSD") is None
