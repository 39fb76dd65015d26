"""Trading sessions: when a US equity's regular session closes, and which symbols have none (crypto).

Pure functions of their arguments (no clock, no I/O). Rules and their sources:

- US equities: the regular session ends at 16:00 America/New_York, Monday to Friday (NYSE and
  Nasdaq; Alpaca: a ``day`` order not filled by the close is canceled/expired). Exchange
  holidays and early closes (13:00) are **not** modelled: on a holiday the close is still
  taken to be 16:00, which only matters to a ``day`` order submitted on that day.
- Crypto trades around the clock: no session, so nothing expires at a close (Alpaca crypto
  orders take ``gtc`` and ``ioc`` only).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
US_EQUITY_CLOSE = time(16, 0)
# Quote currencies of crypto pairs as TradingView and Alpaca spell them (BTCUSD, ETHUSDT, BTC/USD).
_CRYPTO_QUOTES = ("USDT", "USDC", "BUSD", "USD", "BTC", "ETH")
_LONGEST_US_EQUITY_TICKER = 5  # NYSE/Nasdaq symbols have at most five letters (GOOGL)


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


def last_session_close(now: datetime) -> datetime:
    """Return the latest US equity session close at or before ``now`` (timezone-aware), in UTC.

    16:00 America/New_York on the latest weekday whose close is not after ``now``; daylight
    saving time follows the zone database (20:00 UTC in summer, 21:00 UTC in winter).
    """
    local = now.astimezone(NEW_YORK)
    day = local.date()
    while True:
        close = datetime.combine(day, US_EQUITY_CLOSE, tzinfo=NEW_YORK)
        if day.weekday() < 5 and close <= local:
            return close.astimezone(UTC)
        day -= timedelta(days=1)
