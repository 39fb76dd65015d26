"""Rate limits on TradingView intake (flask-limiter, counters in memory per web process).

Two limits, per source address (``request.remote_addr``: the peer, or ``X-Forwarded-For`` as
rewritten by ``ProxyFix`` when ``TRUSTED_PROXY_COUNT`` proxies are trusted):

- ``WEBHOOK_FAILED_AUTH_LIMIT`` (default ``20/minute``): hits of ``POST /webhooks/<id>/<token>``
  answered 404 (unknown config or wrong token — one answer for both) and of ``POST /webhook``
  answered 401 (wrong passphrase) or 404 (single-tenant mode off). Only failed hits count; once
  an address is over, its hits are refused before any database work.
- ``SINGLE_TENANT_WEBHOOK_LIMIT`` (default ``600/minute``): every hit of ``POST /webhook``.

TradingView sends every user's alerts from the same four addresses (FACTS.md), so the failed-hit
limit never applies to them: one user's stale webhook URL must not throttle everyone's alerts,
and a valid config's alerts are never throttled by another config's abuse. Over a limit: 429
``rate_limited`` with ``Retry-After`` (the limit's window, seconds), the standard error body, a
WARNING log line (``action: webhook_rate_limited``: address, route, config id — never the
token) and a per-process counter, ``REFUSED_HITS`` (by limit name). Counters are per process
(``memory://``: no server needed), so with N gunicorn workers an address gets up to N times the
limit; ``RATELIMIT_STORAGE_URI`` may name a shared store (flask-limiter's ``limits`` storages).
An empty setting turns its limit off.
"""

from __future__ import annotations

import logging
from collections import Counter

from flask import Flask, current_app, jsonify, request
from flask.wrappers import Response
from flask_limiter import Limiter, RateLimitExceeded

logger = logging.getLogger(__name__)

# FACTS.md: TradingView's webhook source addresses.
TRADINGVIEW_ADDRESSES = frozenset({"52.89.214.238", "34.212.75.30", "54.218.53.128", "52.32.178.7"})

# Hits refused with 429 by this process since it started, by limit name ("failed_auth",
# "single_tenant").
REFUSED_HITS: Counter[str] = Counter()


def source_address() -> str:
    """The limiter key: the client address as Flask sees it (after ProxyFix, when configured)."""
    return request.remote_addr or "unknown"


limiter = Limiter(key_func=source_address, default_limits=[], headers_enabled=False)


def _setting(name: str) -> str:
    return current_app.config.get(name) or ""


def failed_auth_limit() -> str:
    return _setting("WEBHOOK_FAILED_AUTH_LIMIT") or "1000000/second"


def single_tenant_limit() -> str:
    return _setting("SINGLE_TENANT_WEBHOOK_LIMIT") or "1000000/second"


def failed_auth_exempt() -> bool:
    """TradingView's own addresses, and everyone when the limit is off."""
    return not _setting("WEBHOOK_FAILED_AUTH_LIMIT") or source_address() in TRADINGVIEW_ADDRESSES


def single_tenant_exempt() -> bool:
    return not _setting("SINGLE_TENANT_WEBHOOK_LIMIT")


def failed_webhook(response: Response) -> bool:
    """Whether a webhook hit counts against the failed-auth limit (404, or 401 wrong passphrase)."""
    return response.status_code in (401, 404)


# Decorators for the intake views (viewzenix.webhooks.tradingview).
limit_failed_auth = limiter.limit(
    failed_auth_limit,
    exempt_when=failed_auth_exempt,
    deduct_when=failed_webhook,
    scope="webhook_failed_auth",
    error_message="failed_auth",
)
limit_single_tenant = limiter.limit(
    single_tenant_limit,
    exempt_when=single_tenant_exempt,
    scope="single_tenant_webhook",
    error_message="single_tenant",
)


def init_app(app: Flask) -> None:
    """Attach the limiter (in-memory storage unless RATELIMIT_STORAGE_URI says otherwise) and its 429."""
    app.config.setdefault("RATELIMIT_STORAGE_URI", "memory://")
    limiter.init_app(app)

    @app.errorhandler(RateLimitExceeded)
    def _rate_limited(error: RateLimitExceeded):
        name = str(error.description)
        retry_after = max(1, int(error.limit.limit.get_expiry()))
        REFUSED_HITS[name] += 1
        view_args = request.view_args or {}
        logger.warning(
            "webhook hit refused: over the %s limit (%s) for %s",
            name,
            error.limit.limit,
            source_address(),
            extra={
                "action": "webhook_rate_limited",
                "limit": name,
                "source_ip": source_address(),
                "route": request.url_rule.rule if request.url_rule else request.path,
                "config_id": str(view_args.get("config_id") or ""),
            },
        )
        response = jsonify(
            {
                "code": "rate_limited",
                "status": 429,
                "message": "Too many requests from this address; retry after the time in Retry-After.",
                "errors": {"limit": str(error.limit.limit)},
            }
        )
        response.status_code = 429
        response.headers["Retry-After"] = str(retry_after)
        return response
