"""Trading sessions: when a symbol's market closes, and which symbols have none (crypto).

Sessions, holidays and early closes come from ``exchange_calendars`` (the calendars behind
``pandas_market_calendars`` too): NYSE closes at 16:00 New York, at 13:00 on the days its
calendar says (the day after Thanksgiving, Christmas Eve...), and not at all on holidays. A
symbol's market is read from its exchange prefix (``LSE:VOD`` → XLON); a bare ticker is taken to
be a US equity (XNYS, whose sessions Nasdaq and the other US venues share). Alpaca: a ``day``
order not filled by the close expires. Crypto trades around the clock: no session, so nothing
expires at a close (Alpaca crypto orders take ``gtc`` and ``ioc`` only).

Pure functions of their arguments (no clock); calendars are built once per process.
"""

from __future__ import annotations

import bisect
import warnings
from datetime import UTC, datetime
from functools import lru_cache

# Quote currencies of crypto pairs as TradingView and Alpaca spell them (BTCUSD, ETHUSDT, BTC/USD).
_CRYPTO_QUOTES = ("USDT", "USDC", "BUSD", "USD", "BTC", "ETH")
_LONGEST_US_EQUITY_TICKER = 5  # NYSE/Nasdaq symbols have at most five letters (GOOGL)
US_EQUITIES = "XNYS"
CALENDAR_START = "1990-01-01"  # backtests replay old bars (backtesting.py's GOOG starts in 2004)
# TradingView exchange prefixes → exchange_calendars codes (ISO 10383 MICs).
EXCHANGE_CALENDARS = {
    "NYSE": "XNYS",
    "NASDAQ": "XNYS",
    "AMEX": "XNYS",
    "ARCA": "XNYS",
    "NYSEARCA": "XNYS",
    "BATS": "XNYS",
    "CBOE": "XNYS",
    "OTC": "XNYS",
    "LSE": "XLON",
    "XETR": "XETR",
    "FWB": "XFRA",
    "EURONEXT": "XPAR",
    "TSX": "XTSE",
    "ASX": "XASX",
    "TSE": "XTKS",
    "HKEX": "XHKG",
    "SIX": "XSWX",
}


def is_crypto(symbol: str) -> bool:
    """Return True when ``symbol`` names a crypto pair, which trades without a session.

    A pair with a slash (Alpaca ``BTC/USD``), or a ticker longer than any US equity's (five
    letters) ending in a crypto quote currency (TradingView ``BTCUSD``, ``ETHUSDT``, perpetuals
    ``BTCUSDT.P``); an exchange prefix (``BINANCE:``) is ignored. A heuristic: the app has no
    asset master.
    """
    name = symbol.rsplit(":", 1)[-1].upper()
    if "/" in name:
        return True
    name = name.removesuffix(".P")
    return len(name) > _LONGEST_US_EQUITY_TICKER and name.endswith(_CRYPTO_QUOTES)


def calendar_code(symbol: str | None) -> str | None:
    """Return the exchange_calendars code of ``symbol``'s market, or None for crypto (no session)."""
    if symbol is None:
        return US_EQUITIES
    if is_crypto(symbol):
        return None
    prefix, colon, _ = symbol.upper().partition(":")
    if colon:
        return EXCHANGE_CALENDARS.get(prefix.strip(), US_EQUITIES)
    return US_EQUITIES


@lru_cache(maxsize=16)
def _closes(code: str) -> tuple[datetime, ...]:
    """Every session close (UTC, ascending) of calendar ``code``, read once from exchange_calendars.

    Read into plain datetimes once, so lookups are a bisect; exchange_calendars' pandas
    deprecation warnings (pandas 3.1) are silenced while it builds.
    """
    import exchange_calendars

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        calendar = exchange_calendars.get_calendar(code, start=CALENDAR_START)
        closes = calendar.closes
        return tuple(close.to_pydatetime().astimezone(UTC) for close in closes.tolist())


def session_close_after(moment: datetime, symbol: str | None = None) -> datetime | None:
    """Return the close (UTC) of the session a ``day`` order placed at ``moment`` belongs to.

    That is the first session close strictly after ``moment`` (an order placed after the close,
    or on a holiday or weekend, belongs to the next session). None for crypto, or outside the
    calendar's range (1990 to about a year ahead).
    """
    code = calendar_code(symbol)
    if code is None:
        return None
    closes = _closes(code)
    index = bisect.bisect_right(closes, moment.astimezone(UTC))
    if index == 0 or index == len(closes):
        return None  # outside the calendar's range: no known close
    return closes[index]


def last_session_close(now: datetime, symbol: str | None = None) -> datetime:
    """Return the latest session close at or before ``now`` (timezone-aware), in UTC.

    ``symbol`` picks the market (default US equities). Holidays have no close; early closes
    (13:00 New York) are the close of their day. Raises LookupError before the calendar's start.
    """
    closes = _closes(calendar_code(symbol) or US_EQUITIES)
    index = bisect.bisect_right(closes, now.astimezone(UTC))
    if index == 0:
        raise LookupError(f"no session close known before {now.isoformat()}")
    return closes[index - 1]
