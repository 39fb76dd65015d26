"""The replay adapter: bars from a CSV file or a pandas DataFrame, at any speed or stepped.

What tests, the demo and offline users run on. Data in backtesting.py's shape (its
``backtesting.test.GOOG``, ``EURUSD``, ``BTCUSD``): a datetime index (or first CSV column) of bar
open times and columns ``Open``, ``High``, ``Low``, ``Close`` and optionally ``Volume``; column
names in any case. Optional ``Bid`` and ``Ask`` columns give the quote at each bar's close.
Naive times are taken in ``tz`` (default UTC).

The replay has a cursor: ``step()`` publishes the next bar to the subscribers and moves the cursor
past it; ``run(speed)`` steps through the rest (``speed`` = bars' own time ÷ wall time, e.g. 60
plays an hour of minute bars in a minute; None as fast as possible). ``latest_quote`` and
``latest_trade`` answer as of the cursor: the last published bar's Bid/Ask, and its close at the
bar's close time. ``now()`` is the cursor's time, a clock for the paper broker.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from viewzenix.marketdata import Bar, Quote, Trade
from viewzenix.marketdata.bar_message import interval_seconds

__all__ = ["Replay"]


def _decimal(value: Any) -> Decimal:
    # Through repr: a float's shortest round-tripping text (146.68 stays 146.68, not 146.67999…).
    return Decimal(repr(float(value)))


def _interval_of(index: Any) -> str:
    """TradingView's spelling of the data's smallest bar spacing (``1D``, ``60``, ``1``, ``30S``)."""
    if len(index) < 2:
        return "1D"
    seconds = int(min((b - a).total_seconds() for a, b in itertools.pairwise(index)))
    if seconds >= 86400:
        return "1D"
    if seconds % 60 == 0:
        return str(seconds // 60)
    return f"{seconds}S"


@dataclass
class Replay:
    """Replay bars of one or more symbols in time order; implements ``MarketData``.

    Build with ``from_frame`` or ``from_csv``. ``bars_by_symbol``: each symbol's bars, oldest
    first.
    """

    bars_by_symbol: dict[str, list[Bar]]
    quotes: dict[tuple[str, datetime], Quote] = field(default_factory=dict)
    name: str = "replay"
    _timeline: list[Bar] = field(init=False)
    _cursor: int = field(init=False, default=0)
    _last: dict[str, Bar] = field(init=False, default_factory=dict)
    _subscribers: list[tuple[set[str], Callable[[Bar], None], Callable[[Trade], None] | None]] = field(
        init=False, default_factory=list
    )

    def __post_init__(self) -> None:
        self._timeline = sorted(
            (bar for bars in self.bars_by_symbol.values() for bar in bars), key=lambda b: (b.start, b.symbol)
        )

    # --- building ----------------------------------------------------------------------------

    @classmethod
    def from_frame(cls, frame: Any, symbol: str, *, interval: str | None = None, tz: str = "UTC") -> Replay:
        """Replay a DataFrame of one symbol (datetime index; Open/High/Low/Close[/Volume/Bid/Ask])."""
        return cls.from_frames({symbol: frame}, interval=interval, tz=tz)

    @classmethod
    def from_frames(
        cls, frames: Mapping[str, Any], *, interval: str | None = None, tz: str = "UTC"
    ) -> Replay:
        """Replay DataFrames by symbol, merged in time order."""
        import pandas as pd

        bars_by_symbol: dict[str, list[Bar]] = {}
        quotes: dict[tuple[str, datetime], Quote] = {}
        for symbol, frame in frames.items():
            data = frame.rename(columns=str.lower)
            index = pd.DatetimeIndex(data.index)
            if index.tz is None:
                index = index.tz_localize(tz)
            index = index.tz_convert(UTC)
            name = interval or _interval_of(index)
            seconds = interval_seconds(name)
            if seconds is None:
                raise ValueError(f"interval {name!r} is not a TradingView interval")
            has_volume = "volume" in data.columns
            has_quote = "bid" in data.columns and "ask" in data.columns
            bars = []
            for i, moment in enumerate(index):
                row = data.iloc[i]
                bar = Bar(
                    symbol=symbol,
                    interval=name,
                    start=moment.to_pydatetime(),
                    interval_seconds=seconds,
                    open=_decimal(row["open"]),
                    high=_decimal(row["high"]),
                    low=_decimal(row["low"]),
                    close=_decimal(row["close"]),
                    volume=_decimal(row["volume"]) if has_volume else Decimal(0),
                )
                bars.append(bar)
                if has_quote:
                    quotes[(symbol, bar.start)] = Quote(
                        symbol=symbol, bid=_decimal(row["bid"]), ask=_decimal(row["ask"]), at=bar.end
                    )
            bars_by_symbol[symbol] = bars
        return cls(bars_by_symbol, quotes)

    @classmethod
    def from_csv(
        cls, path: str | Path, symbol: str, *, interval: str | None = None, tz: str = "UTC"
    ) -> Replay:
        """Replay a CSV file: first column the bar's open time, then Open, High, Low, Close[, ...]."""
        import pandas as pd

        frame = pd.read_csv(path, index_col=0, parse_dates=True)
        return cls.from_frame(frame, symbol, interval=interval, tz=tz)

    # --- playing -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._timeline)

    @property
    def remaining(self) -> int:
        """How many bars are still to be published."""
        return len(self._timeline) - self._cursor

    def now(self) -> datetime:
        """The cursor's time: the close of the last published bar (before any: the first open)."""
        if self._cursor == 0:
            return self._timeline[0].start if self._timeline else datetime.now(UTC)
        return self._timeline[self._cursor - 1].end

    def step(self) -> Bar | None:
        """Publish the next bar to the subscribers and return it; None when the replay is over."""
        if self._cursor >= len(self._timeline):
            return None
        bar = self._timeline[self._cursor]
        self._cursor += 1
        self._last[bar.symbol] = bar
        for symbols, on_bar, on_trade in list(self._subscribers):
            if bar.symbol in symbols:
                on_bar(bar)
                if on_trade is not None:
                    on_trade(Trade(symbol=bar.symbol, price=bar.close, at=bar.end, size=bar.volume))
        return bar

    def run(self, speed: float | None = None, *, limit: int | None = None) -> int:
        """Publish the remaining bars (at most ``limit``); return how many.

        ``speed``: replay time ÷ wall time (sleeps between bars by their spacing ÷ speed); None or
        0 as fast as possible.
        """
        count = 0
        previous = None
        while limit is None or count < limit:
            upcoming = self._timeline[self._cursor] if self._cursor < len(self._timeline) else None
            if upcoming is None:
                break
            if speed and previous is not None:
                time.sleep(max((upcoming.start - previous.start).total_seconds(), 0) / speed)
            self.step()
            previous = upcoming
            count += 1
        return count

    # --- MarketData --------------------------------------------------------------------------

    def latest_quote(self, symbol: str) -> Quote | None:
        """The last published bar's Bid/Ask (at its close), or None without those columns."""
        bar = self._last.get(symbol)
        return None if bar is None else self.quotes.get((symbol, bar.start))

    def latest_trade(self, symbol: str) -> Trade | None:
        """The last published bar's close, at its close time; None before the first bar."""
        bar = self._last.get(symbol)
        return None if bar is None else Trade(symbol=symbol, price=bar.close, at=bar.end, size=bar.volume)

    def bars(self, symbol: str, start: datetime, end: datetime, interval: str) -> list[Bar]:
        """The symbol's bars opening in [start, end) at the data's own interval (no resampling).

        Raises ValueError when ``interval`` is not the data's.
        """
        bars = self.bars_by_symbol.get(symbol, [])
        if bars and interval_seconds(interval) != bars[0].interval_seconds:
            raise ValueError(f"the replay holds {bars[0].interval} bars of {symbol}, not {interval}")
        return [b for b in bars if start <= b.start < end]

    def subscribe(
        self,
        symbols: list[str],
        on_bar: Callable[[Bar], None],
        on_trade: Callable[[Trade], None] | None = None,
    ) -> _ReplaySubscription:
        """Call ``on_bar`` (and ``on_trade`` with each close) for every bar published from now on."""
        entry = (set(symbols), on_bar, on_trade)
        self._subscribers.append(entry)
        return _ReplaySubscription(self, entry)


@dataclass
class _ReplaySubscription:
    replay: Replay
    entry: Any

    def close(self) -> None:
        if self.entry in self.replay._subscribers:
            self.replay._subscribers.remove(self.entry)
