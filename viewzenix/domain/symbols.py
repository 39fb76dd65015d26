"""One canonical symbol per instrument, whoever spells it.

US equities keep their ticker (``AAPL``, ``BRK.B``). Crypto pairs are written ``BASE/QUOTE`` as
Alpaca writes them in orders (``BTC/USD``); TradingView writes ``BTCUSD`` (or ``BTCUSDT`` on
exchanges), Alpaca's positions ``BTCUSD``, some feeds ``BTC-USD``: all become ``BTC/USD`` /
``BTC/USDT``. Which concatenated spellings are pairs is ``domain.sessions.is_crypto``'s rule
(longer than any US equity ticker, ending in a crypto quote currency), so sessions, adapters and
reconciliation agree on what is crypto.
"""

from __future__ import annotations

from viewzenix.domain import sessions

# Quote currencies, longest first so BTCUSDT is BTC/USDT and not BTCUSD + T.
CRYPTO_QUOTES = ("USDT", "USDC", "BUSD", "USD", "BTC", "ETH")


def canonical_symbol(symbol: str) -> str:
    """Return the one spelling of ``symbol`` our books, brokers and reconciliation share.

    ``BTCUSD``, ``btc/usd``, ``BTC-USD`` → ``BTC/USD``; ``BTCUSDT`` → ``BTC/USDT``; ``AAPL`` → ``AAPL``.
    """
    text = symbol.strip().upper()
    for separator in ("/", "-"):
        base, found, quote = text.partition(separator)
        if found and base.isalnum() and quote in CRYPTO_QUOTES:
            return f"{base}/{quote}"
    if "/" not in text and sessions.is_crypto(text):
        for quote in CRYPTO_QUOTES:
            if text.endswith(quote):
                return f"{text[: -len(quote)]}/{quote}"
    return text


def is_crypto(symbol: str) -> bool:
    """Return whether ``symbol`` names a crypto pair (``domain.sessions.is_crypto``, any spelling)."""
    return sessions.is_crypto(canonical_symbol(symbol))
