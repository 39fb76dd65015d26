"""Routing controls per webhook config (issue 17 items 6-7): a source allowlist and a symbol mapping.

**Source allowlist** (``webhook_configs.allowed_source_ips``, ``cidr[]``): null means every
address (the default); otherwise an alert whose source address is outside every listed network
is stored rejected, ``source_not_allowed`` (403), and runs nothing. The address is
``request.remote_addr``: the peer, or ``X-Forwarded-For`` only through ``TRUSTED_PROXY_COUNT``
proxies (``ProxyFix``), so a spoofed header is ignored unless proxies are trusted. TradingView's
four published addresses (``viewzenix.domain.sources.TRADINGVIEW_ADDRESSES``) are the preset.
Intake checks it inside the statement that reads the config (no extra round trip).

**Symbol mapping** (``public.symbol_mappings``): alert ticker → broker symbol, both stored in
their canonical spelling (``viewzenix.domain.symbols.canonical_symbol``: ``BTCUSDT`` is stored
``BTC/USDT``), so an alert matches whichever way TradingView spells the pair. Intake looks it
up by the alert's canonical ticker in the statement that stores the signal: ``signals.ticker``,
the signal's ``ticker`` and the job's per-symbol lock hold the broker symbol (the engine and the
risk rules see it); ``signals.alert_ticker`` keeps the alert's ticker.
"""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

from viewzenix.db import Connection, Database
from viewzenix.domain.parsing import MAX_TICKER_LENGTH, TICKER_PATTERN, AlertRejected
from viewzenix.domain.sources import TRADINGVIEW_ADDRESSES
from viewzenix.domain.symbols import canonical_symbol
from viewzenix.exceptions import Invalid, NotFound
from viewzenix.repositories import routing as repo
from viewzenix.services.common import Caller

TRADINGVIEW_PRESET = sorted(TRADINGVIEW_ADDRESSES)
MAX_NETWORKS = 100
MAX_MAPPINGS = 500


class SourceRefused(AlertRejected):
    """This webhook accepts alerts only from the addresses on its allowlist."""

    code = "source_not_allowed"
    status = 403


def _invalid(code: str, field: str, message: str) -> Invalid:
    return Invalid(message, code=code, errors={field: [message]})


def parse_networks(values: list[str]) -> list[str]:
    """Return ``values`` as canonical networks (``52.89.214.238/32``, ``10.0.0.0/8``), deduplicated.

    Raises ``Invalid`` (422 ``invalid_source_network``, field ``allowed_source_ips``) for text that
    is not an IP address or CIDR network (host bits set count as invalid: ``10.0.0.1/8``), and
    ``too_many_source_networks`` past 100.
    """
    if len(values) > MAX_NETWORKS:
        raise _invalid("too_many_source_networks", "allowed_source_ips", f"At most {MAX_NETWORKS} networks.")
    networks: list[str] = []
    for value in values:
        text = value.strip() if isinstance(value, str) else ""
        try:
            network = str(ipaddress.ip_network(text, strict=True))
        except ValueError:
            raise _invalid(
                "invalid_source_network",
                "allowed_source_ips",
                f'"{value}" is not an IP address or CIDR network (e.g. 52.89.214.238 or 10.0.0.0/8).',
            ) from None
        if "/" not in network:
            network += "/32"
        if network not in networks:
            networks.append(network)
    return networks


def source_allowed(networks: list[Any] | None, source_ip: str | None) -> bool:
    """Return whether ``source_ip`` lies in one of ``networks`` (None: every address is allowed)."""
    if networks is None:
        return True
    if source_ip is None:
        return False
    try:
        address = ipaddress.ip_address(source_ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(str(n), strict=False) for n in networks)


def _shown_allowlist(row: dict[str, Any]) -> dict[str, Any]:
    networks = row["allowed_source_ips"]
    return {
        "config_id": row["id"],
        "allowed_source_ips": None if networks is None else [str(n) for n in networks],
        "tradingview_addresses": TRADINGVIEW_PRESET,
    }


def get_allowlist(db: Database, caller: Caller, config_id: uuid.UUID) -> dict[str, Any]:
    """Return ``{config_id, allowed_source_ips (None: any), tradingview_addresses}``; NotFound."""
    with db.transaction(caller.claims) as conn:
        row = repo.allowed_source_ips(conn, config_id)
    if row is None:
        raise NotFound("No webhook config with this id.")
    return _shown_allowlist(row)


def set_allowlist(
    db: Database, caller: Caller, config_id: uuid.UUID, values: list[str] | None, *, preset: str | None = None
) -> dict[str, Any]:
    """Set the allowlist: ``values`` (None or absent with no preset: every address) plus a preset.

    ``preset="tradingview"`` adds TradingView's four addresses. Raises ``Invalid`` (422) for a
    bad network, ``NotFound`` for a config that is not the caller's.
    """
    networks = None if values is None else parse_networks(values)
    if preset == "tradingview":
        networks = parse_networks([*(networks or []), *TRADINGVIEW_PRESET])
    with db.transaction(caller.claims) as conn:
        row = repo.set_allowed_source_ips(conn, config_id, networks)
    if row is None:
        raise NotFound("No webhook config with this id.")
    return _shown_allowlist(row)


def _symbol(value: Any, field: str) -> str:
    text = value.strip().upper() if isinstance(value, str) else ""
    if not text:
        raise _invalid("empty_symbol", field, f"{field} is empty: map to a symbol the broker trades.")
    if len(text) > MAX_TICKER_LENGTH or not TICKER_PATTERN.fullmatch(text):
        raise _invalid(
            "invalid_symbol",
            field,
            f'{field} "{text[:40]}" is not a symbol: use 1 to {MAX_TICKER_LENGTH} letters, '
            "digits and . / ! & _ -",
        )
    return canonical_symbol(text)


def parse_mappings(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Return ``[(alert ticker, broker symbol)]`` in canonical spelling from API items.

    Each item: ``{alert_ticker, broker_symbol}``. Raises ``Invalid`` (422) with code
    ``empty_symbol`` / ``invalid_symbol`` (field ``mappings[i].alert_ticker`` or
    ``.broker_symbol``), ``duplicate_mapping`` (one alert ticker twice, canonical spelling) or
    ``too_many_mappings`` (past 500).
    """
    if len(items) > MAX_MAPPINGS:
        raise _invalid("too_many_mappings", "mappings", f"At most {MAX_MAPPINGS} mappings per webhook.")
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        alert = _symbol(item.get("alert_ticker"), f"mappings.{i}.alert_ticker")
        broker = _symbol(item.get("broker_symbol"), f"mappings.{i}.broker_symbol")
        if alert in seen:
            raise _invalid("duplicate_mapping", f"mappings.{i}.alert_ticker", f"{alert} is mapped twice.")
        seen.add(alert)
        pairs.append((alert, broker))
    return pairs


def get_mappings(db: Database, caller: Caller, config_id: uuid.UUID) -> list[dict[str, Any]]:
    """Return the config's mappings ``[{alert_ticker, broker_symbol, created_at}]``. NotFound if not yours."""
    with db.transaction(caller.claims) as conn:
        if repo.allowed_source_ips(conn, config_id) is None:
            raise NotFound("No webhook config with this id.")
        return repo.mappings(conn, config_id)


def set_mappings(
    db: Database, caller: Caller, config_id: uuid.UUID, items: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Replace the config's mapping table with ``items``; return it. Raises ``Invalid``, ``NotFound``."""
    pairs = parse_mappings(items)
    with db.transaction(caller.claims) as conn:
        if repo.allowed_source_ips(conn, config_id) is None:
            raise NotFound("No webhook config with this id.")
        repo.replace_mappings(conn, config_id, caller.user_id, pairs)
        return repo.mappings(conn, config_id)


def mapped_ticker(conn: Connection, config_id: uuid.UUID, ticker: str) -> str | None:
    """Return the broker symbol mapped from the alert's ``ticker`` on the config, or None.

    For the intake paths that store a signal through ``services.intake.store_alert`` (test
    alerts, single-tenant); the URL intake does this inside its one statement.
    """
    return repo.broker_symbol(conn, config_id, canonical_symbol(ticker))
