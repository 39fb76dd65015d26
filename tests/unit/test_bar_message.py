"""Specification of the bar message TradingView pushes (``viewzenix.marketdata.bar_message``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from viewzenix.marketdata.bar_message import BarRejected, interval_seconds, is_bar_message, parse_bar

TEMPLATE = {
    "type": "bar",
    "ticker": "{{ticker}}",
    "interval": "{{interval}}",
    "time": "{{time}}",
    "open": "{{open}}",
    "high": "{{high}}",
    "low": "{{low}}",
    "close": "{{close}}",
    "volume": "{{volume}}",
}


def rendered(**values) -> bytes:
    body = {
        **TEMPLATE,
        "ticker": "AAPL",
        "interval": "5",
        "time": "2026-12-04T14:30:00Z",
        "open": "190.5",
        "high": "191.25",
        "low": "190.1",
        "close": "191",
        "volume": "12345",
    }
    body.update(values)
    return json.dumps(body).encode()


def test_the_rendered_template_parses_into_a_bar_with_its_close_time():
    bar = parse_bar(rendered())

    assert (bar.symbol, bar.interval, bar.interval_seconds) == ("AAPL", "5", 300)
    assert bar.start == datetime(2026, 12, 4, 14, 30, tzinfo=UTC)
    assert bar.end == datetime(2026, 12, 4, 14, 35, tzinfo=UTC)
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (
        Decimal("190.5"),
        Decimal("191.25"),
        Decimal("190.1"),
        Decimal("191"),
        Decimal("12345"),
    )


@pytest.mark.parametrize(
    ("interval", "seconds"),
    [
        ("1", 60),
        ("60", 3600),
        ("240", 14400),
        ("D", 86400),
        ("1D", 86400),
        ("1W", 604800),
        ("30S", 30),
        ("3M", 3 * 31 * 86400),
        ("1d", 86400),
    ],
)
def test_tradingview_intervals(interval, seconds):
    assert interval_seconds(interval) == seconds


@pytest.mark.parametrize("interval", ["", "0", "1X", "abc", "-5", "13M"])
def test_not_intervals(interval):
    assert interval_seconds(interval) is None


def test_an_exchange_prefix_is_dropped_and_the_ticker_upper_cased():
    assert parse_bar(rendered(ticker="nasdaq:aapl")).symbol == "AAPL"


def test_a_missing_field_is_named():
    with pytest.raises(BarRejected) as caught:
        parse_bar(rendered(close=""))

    assert (caught.value.code, caught.value.errors) == ("bar_missing_field", {"field": "close"})


def test_a_time_that_is_not_one_is_refused():
    with pytest.raises(BarRejected) as caught:
        parse_bar(rendered(time="{{time}}"))

    assert caught.value.code == "bar_invalid_field"


def test_is_bar_message_tells_bars_from_order_alerts():
    assert is_bar_message(rendered())
    assert not is_bar_message(b'{"ticker": "AAPL", "action": "buy"}')
    # TradingView's strategy format carries a "bar" object: an order alert, not a bar message.
    assert not is_bar_message(b'{"ticker": "AAPL", "bar": {"type": "bar"}, "strategy": {}}')
    assert not is_bar_message(b'{"type": "bar", "ticker": "AAPL"')  # not JSON: the alert path refuses it


def test_a_crypto_bar_carries_the_spelling_our_orders_carry():
    # TradingView writes BTCUSD; execution records the order as BTC/USD, so the bar must name it so.
    assert parse_bar(rendered(ticker="COINBASE:BTCUSD")).symbol == "BTC/USD"


@pytest.mark.parametrize("lookalike", ["ſPY", "ıBM", "ß"])
def test_a_lookalike_ticker_is_refused_as_sent_not_applied_to_the_real_symbol(lookalike):
    with pytest.raises(BarRejected) as refused:
        parse_bar(rendered(ticker=lookalike))
    assert refused.value.code == "bar_invalid_field"
