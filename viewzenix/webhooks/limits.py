"""Rate limits on TradingView intake (the ``limits`` library, counters in memory per web process).

Two limits, per source address (``request.remote_addr``: the peer, or ``X-Forwarded-For`` as
rewritten by ``ProxyFix`` when ``TRUSTED_PROXY_COUNT`` proxies are trusted), fixed windows:

- ``WEBHOOK_FAILED_AUTH_LIMIT`` (default ``20/minute``): hits of ``POST /webhooks/<id>/<token>``
  answered 404 (unknown config or wrong token — one answer for both) and of ``POST /webhook``
  answered 401 (wrong passphrase) or 404 (single-tenant mode off). Only failed hits count; once
  an address is over, its hits are refused before any database work.
- ``SINGLE_TENANT_WEBHOOK_LIMIT`` (default ``600/minute``): every hit of ``POST /webhook``.

TradingView sends every user's alerts from the same four addresses (docs/tradingview.md), so the failed-hit
limit never applies to them: one user's stale webhook URL must not throttle everyone's alerts,
and a valid config's alerts are never throttled by another config's abuse. Over a limit: 429
``rate_limited`` with ``Retry-After`` (seconds until the window resets), the standard error body,
a WARNING log line (``action: webhook_rate_limited``: address, limit, config id — never the
token) and a per-process counter, ``REFUSED_HITS`` (by limit name). Counters live in this process
(``limits``' ``MemoryStorage``: no server needed), so with N gunicorn workers an address gets up
to N times the limit. An empty setting turns its limit off.

With ``TRADINGVIEW_SOURCES_ONLY`` on, intake also refuses every hit from an address that is not
one of TradingView's (403 ``source_not_allowed``, before any database work, logged and counted
under ``source_not_allowed``): an app-wide allowlist, for deployments whose webhooks only
TradingView calls. It needs the real client address: behind a proxy, set
``TRUSTED_PROXY_COUNT``.

Why ``limits`` and not its Flask wrapper flask-limiter: the wrapper's per-request machinery (a
before-request hook on every route, limit resolution, exemption scopes) cost about 0.2 ms of CPU
per alert on intake's hot path (cProfile); the same storage and strategy called directly cost
microseconds.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from flask import current_app, make_response, request
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter

from viewzenix.exceptions import ViewzenixError

logger = logging.getLogger(__name__)

# TradingView's webhook source addresses (its help page on webhook alerts; docs/tradingview.md).
TRADINGVIEW_ADDRESSES = frozenset({"52.89.214.238", "34.212.75.30", "54.218.53.128", "52.32.178.7"})
FAILED_AUTH = "failed_auth"
SINGLE_TENANT = "single_tenant"
SETTINGS = {FAILED_AUTH: "WEBHOOK_FAILED_AUTH_LIMIT", SINGLE_TENANT: "SINGLE_TENANT_WEBHOOK_LIMIT"}

# Hits refused with 429 by this process since it started, by limit name.
REFUSED_HITS: Counter[str] = Counter()


class RateLimited(ViewzenixError):
    """Too many requests from this address; retry after the time in Retry-After."""

    status = 429
    code = "rate_limited"

    def __init__(self, limit: RateLimitItem, retry_after: int) -> None:
        super().__init__(errors={"limit": str(limit)})
        self.headers = {"Retry-After": str(retry_after)}


class SourceNotAllowed(ViewzenixError):
    """Webhooks here accept TradingView's source addresses only."""

    status = 403
    code = "source_not_allowed"


class _Counters:
    """This process's window counters (created on first use, so each forked worker has its own)."""

    def __init__(self) -> None:
        self.pid = 0
        self.limiter: FixedWindowRateLimiter | None = None

    def get(self) -> FixedWindowRateLimiter:
        if self.limiter is None or self.pid != os.getpid():
            self.pid, self.limiter = os.getpid(), FixedWindowRateLimiter(MemoryStorage())
        return self.limiter


_counters = _Counters()


def reset() -> None:
    """Forget every counter of this process (tests)."""
    _counters.limiter = None


@functools.lru_cache(maxsize=16)
def _parse(value: str) -> RateLimitItem:
    return parse(value)


def _limit(name: str) -> RateLimitItem | None:
    value = current_app.config.get(SETTINGS[name]) or ""
    return _parse(value) if value else None


def source_address() -> str:
    """The client address as Flask sees it (after ProxyFix, when configured)."""
    return request.remote_addr or "unknown"


def _refuse(name: str, limit: RateLimitItem, address: str) -> RateLimited:
    reset_at = _counters.get().get_window_stats(limit, name, address).reset_time
    retry_after = max(1, math.ceil(reset_at - time.time()))
    REFUSED_HITS[name] += 1
    logger.warning(
        "webhook hit refused: over the %s limit (%s) for %s",
        name,
        limit,
        address,
        extra={
            "action": "webhook_rate_limited",
            "limit": name,
            "source_ip": address,
            "config_id": str((request.view_args or {}).get("config_id") or ""),
        },
    )
    return RateLimited(limit, retry_after)


def limited(*, failed_auth: bool = True, every_hit: str | None = None) -> Callable:
    """Decorate an intake view: refuse an address over its limits (or not allowed), count its failed hits.

    ``failed_auth``: apply ``WEBHOOK_FAILED_AUTH_LIMIT`` (hits answered 401/404 count).
    ``every_hit``: the name of a limit every hit counts against (``SINGLE_TENANT``).
    """

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            address = source_address()
            if current_app.config.get("TRADINGVIEW_SOURCES_ONLY") and address not in TRADINGVIEW_ADDRESSES:
                REFUSED_HITS["source_not_allowed"] += 1
                logger.warning(
                    "webhook hit refused: %s is not a TradingView address",
                    address,
                    extra={"action": "webhook_source_not_allowed", "source_ip": address},
                )
                raise SourceNotAllowed()
            counters = _counters.get()
            failed = _limit(FAILED_AUTH) if failed_auth and address not in TRADINGVIEW_ADDRESSES else None
            if failed is not None and not counters.test(failed, FAILED_AUTH, address):
                raise _refuse(FAILED_AUTH, failed, address)
            if every_hit is not None:
                limit = _limit(every_hit)
                if limit is not None and not counters.hit(limit, every_hit, address):
                    raise _refuse(every_hit, limit, address)
            if failed is None:
                return view(*args, **kwargs)
            try:
                response = make_response(view(*args, **kwargs))
            except ViewzenixError as error:
                if error.status in (401, 404):
                    counters.hit(failed, FAILED_AUTH, address)
                raise
            if response.status_code in (401, 404):
                counters.hit(failed, FAILED_AUTH, address)
            return response

        return wrapper

    return decorate
