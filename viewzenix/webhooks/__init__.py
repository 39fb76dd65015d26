"""Inbound webhooks, side by side: TradingView alert intake and Supabase Database Webhooks.

Each module here is an HTTP edge: it reads the raw request bytes, calls one service, and renders
what the service returns or raises (``viewzenix.exceptions``) as a response. Signature checks on
raw bytes happen here, before anything is parsed.

- ``tradingview``: ``POST /webhooks/<config_id>/<token>`` and the single-tenant ``POST /webhook``.
- ``supabase``: ``POST /hooks/supabase/db`` and ``GET /hooks/supabase/health``.
"""

from __future__ import annotations

from flask import Flask


def register_webhooks(app: Flask) -> None:
    """Register every inbound-webhook blueprint on ``app``."""
    from viewzenix.webhooks import supabase, tradingview

    app.register_blueprint(tradingview.bp)
    supabase.init_app(app)
