"""One canonical symbol per instrument, whoever spells it.

US equities keep their ticker (``AAPL``, ``BRK.B``). Crypto pairs are written ``BASE/QUOTE`` as
Alpaca writes them in orders (``BTC/USD``); TradingView writes ``BTCUSD`` (or ``BTCUSDT`` on
exchanges), Alpaca's positions ``BTCUSD``, some feeds ``BTC-USD``: all become ``BTC/USD`` /
``BTC/USDT``. A concatenated spelling is read as a pair only when its base is a known crypto
asset (Alpaca's list of tradable crypto, FACTS.md), so a stock ticker ending in ``USD`` stays one.
"""

from __future__ import annotations

# Alpaca's tradable crypto assets (base currencies); USDT and USDC are also quotes.
CRYPTO_BASES = frozenset(
    {
        "AAVE", "AVAX", "BAT", "BCH", "BTC", "CRV", "DOGE", "DOT", "ETH", "GRT", "LINK", "LTC",
        "MKR", "PEPE", "SHIB", "SOL", "SUSHI", "TRUMP", "UNI", "USDC", "USDT", "XRP", "XTZ", "YFI",
    }
)  # fmt: skip
# Quote currencies, longest first so BTCUSDT is BTC/USDT and not BTCUSD + T.
CRYPTO_QUOTES = ("USDT", "USDC", "USD", "BTC")


def canonical_symbol(symbol: str) -> str:
    """Return the one spelling of ``symbol`` our books, brokers and reconciliation share.

    ``BTCUSD``, ``btc/usd``, ``BTC-USD`` → ``BTC/USD``; ``BTCUSDT`` → ``BTC/USDT``; ``AAPL`` → ``AAPL``.
    """
    text = symbol.strip().upper()
    for separator in ("/", "-"):
        base, found, quote = text.partition(separator)
        if found and base in CRYPTO_BASES and quote in CRYPTO_QUOTES:
            return f"{base}/{quote}"
    for quote in CRYPTO_QUOTES:
        base = text[: -len(quote)]
        if text.endswith(quote) and base in CRYPTO_BASES:
            return f"{base}/{quote}"
    return text


def is_crypto(symbol: str) -> bool:
    """Return whether ``symbol`` names a crypto pair (in any spelling ``canonical_symbol`` reads)."""
    return "/" in canonical_symbol(symbol)
