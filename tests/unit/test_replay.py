"""Specification of the replay adapter: bars from a CSV file or a DataFrame, stepped or played."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from backtesting.test import BTCUSD, EURUSD, GOOG

from viewzenix.marketdata import MarketData
from viewzenix.marketdata.replay import Replay


def test_backtesting_py_test_data_replays_as_bars():
    replay = Replay.from_frame(GOOG, "GOOG")

    first = replay.step()

    assert isinstance(replay, MarketData)
    assert len(replay) == len(GOOG)
    assert (first.interval, first.start) == ("1D", datetime(2004, 8, 19, tzinfo=UTC))
    assert (first.open, first.close) == (Decimal("100.0"), Decimal("100.34"))
    trade = replay.latest_trade("GOOG")
    assert (trade.price, trade.at) == (Decimal("100.34"), datetime(2004, 8, 20, tzinfo=UTC))
    assert replay.latest_quote("GOOG") is None  # no Bid/Ask columns


@pytest.mark.parametrize(("frame", "interval"), [(EURUSD, "60"), (BTCUSD, "1D")])
def test_the_interval_is_read_from_the_data(frame, interval):
    assert Replay.from_frame(frame, "X").step().interval == interval


def test_a_csv_file_replays_like_its_frame(tmp_path):
    path = tmp_path / "goog.csv"
    GOOG.head(5).to_csv(path)

    replay = Replay.from_csv(path, "GOOG")

    assert [b.close for b in replay.bars_by_symbol["GOOG"]] == [Decimal(repr(c)) for c in GOOG.Close.head(5)]


def test_subscribers_get_each_bar_in_time_order_across_symbols_and_can_stop():
    replay = Replay.from_frames({"GOOG": GOOG.head(3), "BTC": BTCUSD.loc["2004-08-19":].head(0)})
    seen = []
    subscription = replay.subscribe(["GOOG"], seen.append)

    replay.step()
    subscription.close()
    replay.run()

    assert [b.start.date().isoformat() for b in seen] == ["2004-08-19"]
    assert replay.remaining == 0 and replay.step() is None


def test_run_at_a_speed_sleeps_the_bars_spacing_divided_by_it(monkeypatch):
    slept = []
    monkeypatch.setattr("viewzenix.marketdata.replay.time.sleep", slept.append)
    replay = Replay.from_frame(GOOG.head(3), "GOOG")

    assert replay.run(speed=86400) == 3

    assert slept == [1.0, 3.0]  # Thursday → Friday → Monday


def test_bars_for_a_range():
    replay = Replay.from_frame(GOOG.head(10), "GOOG")
    start = datetime(2004, 8, 20, tzinfo=UTC)

    bars = replay.bars("GOOG", start, start + timedelta(days=4), "1D")

    assert [b.start.day for b in bars] == [20, 23]
    with pytest.raises(ValueError, match="not 60"):
        replay.bars("GOOG", start, start, "60")
