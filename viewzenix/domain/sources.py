"""TradingView's webhook source addresses, for per-webhook allowlists (Flask-free).

TradingView's help page on webhook alerts lists the four addresses its alerts come from
(docs/tradingview.md). ``viewzenix.webhooks.limits.TRADINGVIEW_ADDRESSES`` (the app-wide switch)
holds the same four; ``tests/unit/test_routing.py`` keeps them equal.
"""

from __future__ import annotations

TRADINGVIEW_ADDRESSES = frozenset({"52.89.214.238", "34.212.75.30", "54.218.53.128", "52.32.178.7"})
