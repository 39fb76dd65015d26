"""Parse a bar message pushed by a TradingView alert on a config's webhook URL.

The alert's message (FACTS.md: ``{{time}}`` is the bar's open time, UTC ``yyyy-MM-ddTHH:mm:ssZ``;
with "once per bar close" each finished bar is sent)::

    {"type": "bar", "ticker": "{{ticker}}", "interval": "{{interval}}", "time": "{{time}}",
     "open": "{{open}}", "high": "{{high}}", "low": "{{low}}", "close": "{{close}}",
     "volume": "{{volume}}"}

Numbers may be strings or JSON numbers; ``time`` may also be epoch milliseconds. ``interval``
is TradingView's: ``1S``..``59S`` seconds, ``1``..``1440`` minutes, ``D``/``1D``, ``W``/``1W``,
``M``/``1M`` (and multiples). Every refusal is a ``BarRejected`` (422) with its own ``code``.
Pure: no I/O, no clock.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from viewzenix.domain.symbols import canonical_symbol
from viewzenix.exceptions import ViewzenixError
from viewzenix.marketdata import Bar

__all__ = ["BarRejected", "interval_seconds", "is_bar_message", "parse_bar"]

_TICKER = re.compile(r"^[A-Z0-9][A-Z0-9./!&_ -]{0,39}$")
_INTERVAL = re.compile(r"^(\d*)([SDWM]?)$")
_UNIT_SECONDS = {"S": 1, "": 60, "D": 86400, "W": 7 * 86400, "M": 31 * 86400}
_MAX_INTERVAL_SECONDS = 12 * 31 * 86400


class BarRejected(ViewzenixError):
    """The bar message cannot be applied."""

    code = "bar_rejected"
    status = 422

    def __init__(
        self,
        message: str | None = None,
        /,
        *,
        code: str | None = None,
        status: int | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message, code=code, status=status, errors=details)


def is_bar_message(raw: bytes) -> bool:
    """Return True when ``raw`` looks like a bar message (``"type": "bar"``); cheap on alerts.

    A byte search first, so an order alert costs two substring scans; only a body naming both
    ``"type"`` and ``"bar"`` is decoded.
    """
    if b'"bar"' not in raw or b'"type"' not in raw:
        return False
    try:
        body = json.loads(raw)
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("type"), str) and body["type"].lower() == "bar"


def interval_seconds(interval: str) -> int | None:
    """Return the length of a TradingView interval in seconds, or None when it is not one."""
    match = _INTERVAL.match(interval.strip().upper())
    if match is None or (not match.group(1) and not match.group(2)):
        return None
    count = int(match.group(1) or 1)
    seconds = count * _UNIT_SECONDS[match.group(2)]
    if count <= 0 or seconds > _MAX_INTERVAL_SECONDS:
        return None
    return seconds


def parse_bar(raw: bytes) -> Bar:
    """Parse a bar message into a ``Bar``; raise ``BarRejected`` with the reason.

    Codes: ``invalid_json``, ``bar_missing_field``, ``bar_invalid_field`` (a ticker, a time or a
    number that is not one), ``bar_unknown_interval``, ``bar_price_not_finite`` (NaN,
    Infinity), ``bar_price_negative`` (a price ≤ 0 or a negative volume), ``bar_high_below_low``,
    ``bar_range_excludes_open_close`` (open or close outside [low, high]).
    """
    try:
        body = json.loads(raw)
    except ValueError as error:
        raise BarRejected(f"The bar message is not valid JSON: {error}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise BarRejected("The bar message must be a JSON object.", code="invalid_json")
    missing = [
        f for f in ("ticker", "interval", "time", "open", "high", "low", "close") if body.get(f) in (None, "")
    ]
    if missing:
        raise BarRejected(
            f"The bar message has no {', '.join(missing)}.", code="bar_missing_field", field=missing[0]
        )
    symbol = _ticker(body["ticker"])
    interval = str(body["interval"]).strip().upper()
    seconds = interval_seconds(interval)
    if seconds is None:
        raise BarRejected(
            f'interval "{body["interval"]}" is not a TradingView interval (e.g. "1", "60", "1D", "1W").',
            code="bar_unknown_interval",
            field="interval",
        )
    start = _time(body["time"])
    prices = {name: _number(body, name) for name in ("open", "high", "low", "close")}
    volume = _number(body, "volume") if body.get("volume") not in (None, "") else Decimal(0)
    for name, value in prices.items():
        if value <= 0:
            raise BarRejected(
                f"{name} {value} is not a positive price.", code="bar_price_negative", field=name
            )
    if volume < 0:
        raise BarRejected(f"volume {volume} is negative.", code="bar_price_negative", field="volume")
    high, low = prices["high"], prices["low"]
    if high < low:
        raise BarRejected(f"high {high} is below low {low}.", code="bar_high_below_low", field="high")
    for name in ("open", "close"):
        if not low <= prices[name] <= high:
            raise BarRejected(
                f"{name} {prices[name]} is outside the bar's range [{low}, {high}].",
                code="bar_range_excludes_open_close",
                field=name,
            )
    return Bar(
        symbol=symbol,
        interval=interval,
        start=start,
        interval_seconds=seconds,
        open=prices["open"],
        high=high,
        low=low,
        close=prices["close"],
        volume=volume,
    )


def _ticker(value: Any) -> str:
    if not isinstance(value, str):
        raise BarRejected("ticker must be a string.", code="bar_invalid_field", field="ticker")
    ticker = value.strip().rpartition(":")[2].strip()  # NASDAQ:AAPL → AAPL, as alerts
    # Checked as sent, then upper-cased: "ſPY".upper() is "SPY" (a lookalike must not move SPY).
    if not ticker.isascii() or not _TICKER.match(ticker.upper()):
        raise BarRejected(f'ticker "{value[:40]}" is not a symbol.', code="bar_invalid_field", field="ticker")
    return canonical_symbol(ticker)  # BTCUSD → BTC/USD, the spelling our orders carry


def _time(value: Any) -> datetime:
    if isinstance(value, bool):
        value = None
    elif isinstance(value, int | float) or (isinstance(value, str) and value.strip().isdigit()):
        try:
            return datetime.fromtimestamp(int(value) / 1000, UTC)  # epoch milliseconds
        except (OverflowError, OSError, ValueError):
            value = None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if moment is not None:
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    raise BarRejected(
        f"time {str(value)[:40]!r} is not the bar's open time (TradingView's {{{{time}}}}, e.g. "
        '"2026-12-04T14:30:00Z").',
        code="bar_invalid_field",
        field="time",
    )


def _number(body: dict[str, Any], name: str) -> Decimal:
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise BarRejected(f"{name} must be a number.", code="bar_invalid_field", field=name)
    try:
        number = Decimal(str(value).strip().replace(",", ""))
    except InvalidOperation:
        raise BarRejected(
            f"{name} {str(value)[:40]!r} is not a number.", code="bar_invalid_field", field=name
        ) from None
    if not number.is_finite():
        raise BarRejected(f"{name} {value} is not a finite price.", code="bar_price_not_finite", field=name)
    return number
