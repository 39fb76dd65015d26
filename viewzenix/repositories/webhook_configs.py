"""SQL for webhook configs and user profiles."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from psycopg import sql

from viewzenix.db import Connection
from viewzenix.domain.model import (
    OrderType,
    QuantityType,
    RiskRules,
    TimeInForce,
    TradingSettings,
)
from viewzenix.domain.windows import stored_windows
from viewzenix.repositories.paging import select_page

# Columns a user may set on create / patch (the API schema validates their values).
SETTABLE_COLUMNS = (
    "name",
    "description",
    "notification_preferences",
    "is_active",
    "entries_paused",
    "broker",
    "quantity_type",
    "quantity",
    "use_signal_quantity",
    "order_type",
    "time_in_force",
    "allow_reverse",
    "subtract_exit_quantity",
    "allowed_symbols",
    "max_position_qty",
    "max_position_notional",
    "allow_short",
    "allow_add",
    "max_signal_age_seconds",
    "starting_cash",
    "slippage_bps",
    "commission_rate",
    "commission_fixed",
    "dedupe_window_seconds",
    "market_data_source",
    "market_data_symbols",
    "max_quote_age_seconds",
    "margin_multiplier",
    "bracket_conflict",
    "trading_windows",
    "daily_loss_limit",
    "flatten_on_loss_limit",
    "approval_mode",
    "approval_timeout_seconds",
)

_JSON_COLUMNS = {"notification_preferences", "market_data_symbols", "trading_windows"}


def _adapt(column: str, value: Any) -> Any:
    if column == "trading_windows" and value is None:
        return None  # SQL null: no windows (not a JSON null)
    if column in _JSON_COLUMNS:
        from psycopg.types.json import Jsonb

        return Jsonb(value)
    return value


def ensure_user(conn: Connection, user_id: uuid.UUID, email: str | None) -> None:
    """Create the user's profile row if missing (first API call of a new Supabase user)."""
    conn.execute(
        "insert into public.users (id, email) values (%s, %s) on conflict (id) do nothing",
        (user_id, email),
    )


def insert(
    conn: Connection,
    *,
    user_id: uuid.UUID,
    token_hash: bytes,
    token_hint: str,
    values: dict[str, Any],
    config_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """Insert a config with ``values`` (subset of SETTABLE_COLUMNS); return the row."""
    columns = ["user_id", "security_token_hash", "token_hint"]
    params: list[Any] = [user_id, token_hash, token_hint]
    if config_id is not None:
        columns.append("id")
        params.append(config_id)
    for column, value in values.items():
        if column not in SETTABLE_COLUMNS:
            raise ValueError(f"unknown column {column}")
        columns.append(column)
        params.append(_adapt(column, value))
    query = sql.SQL("insert into public.webhook_configs ({}) values ({}) returning *").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(sql.Placeholder() * len(columns)),
    )
    return conn.execute(query, params).fetchone()


def update(conn: Connection, config_id: uuid.UUID, values: dict[str, Any]) -> dict[str, Any] | None:
    """Update ``values`` on a config; return the new row, or None when not found (or not visible)."""
    if not values:
        return get(conn, config_id)
    for column in values:
        if column not in SETTABLE_COLUMNS:
            raise ValueError(f"unknown column {column}")
    query = sql.SQL("update public.webhook_configs set {} where id = %s returning *").format(
        sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder()) for c in values)
    )
    params = [_adapt(c, v) for c, v in values.items()] + [config_id]
    return conn.execute(query, params).fetchone()


def set_token(
    conn: Connection, config_id: uuid.UUID, token_hash: bytes, token_hint: str
) -> dict[str, Any] | None:
    return conn.execute(
        "update public.webhook_configs set security_token_hash = %s, token_hint = %s, "
        "token_rotated_at = now() where id = %s returning *",
        (token_hash, token_hint, config_id),
    ).fetchone()


def get(conn: Connection, config_id: uuid.UUID) -> dict[str, Any] | None:
    return conn.execute("select * from public.webhook_configs where id = %s", (config_id,)).fetchone()


INTAKE_CONFIG = """
select id, user_id, security_token_hash, is_active, dedupe_window_seconds, notification_preferences,
    approval_mode, approval_timeout_seconds, allowed_source_ips
from public.webhook_configs where id = %(config_id)s
"""

# The config and, in the same statement, the alert's dedupe claim (public.signal_dedupe): only
# on an active config with a window, and only with the right token (the caller still compares
# the token in constant time and answers 404; this guard keeps a wrong token from writing).
# A live claim keeps its owner, an expired one is taken over; claimed_by is our signal_id when
# the alert is fresh, else the original's. A concurrent claimant of the same key waits on the
# primary key until the first commits, then sees its row (or, if it rolled back, goes ahead).
# With check_source, an address outside the config's allowlist claims nothing either (the caller
# refuses it, source_not_allowed: the same alert from an allowed address is then new).
INTAKE_CONFIG_AND_CLAIM = """
with config as (
    select id, user_id, security_token_hash, is_active, dedupe_window_seconds, notification_preferences,
        approval_mode, approval_timeout_seconds, allowed_source_ips
    from public.webhook_configs where id = %(config_id)s
), claim as (
    insert into public.signal_dedupe as d (config_id, dedupe_key, signal_id, expires_at)
    select id, %(dedupe_key)s, %(signal_id)s, now() + make_interval(secs => dedupe_window_seconds)
    from config
    where is_active and dedupe_window_seconds > 0
      and (%(token_hash)s::bytea is null or security_token_hash = %(token_hash)s)
      and (not %(check_source)s::boolean or allowed_source_ips is null
          or coalesce(%(source_ip)s::inet <<= any(allowed_source_ips), false))
    on conflict (config_id, dedupe_key) do update set
        signal_id = case when d.expires_at <= now() then excluded.signal_id else d.signal_id end,
        expires_at = case when d.expires_at <= now() then excluded.expires_at else d.expires_at end
    returning d.signal_id
)
select config.*, (select signal_id from claim) as claimed_by from config
"""


def get_for_intake(
    conn: Connection,
    config_id: uuid.UUID,
    *,
    token_hash: bytes | None,
    dedupe_key: str | None = None,
    signal_id: uuid.UUID | None = None,
    check_source: bool = False,
    source_ip: str | None = None,
) -> dict[str, Any] | None:
    """Return the few columns intake needs to authenticate and route an alert; None if unknown.

    With ``dedupe_key`` (an accepted alert's key) and ``signal_id`` (the id its signal will
    get), also claim the key in the same statement — one round trip — and add ``claimed_by``:
    ``signal_id`` when the alert is fresh, the original's id when it is a duplicate, None when
    nothing was claimed (config inactive, window 0, or ``token_hash`` not the config's).
    ``token_hash``: SHA-256 of the URL token; None when the caller authenticated the alert
    otherwise (the single-tenant passphrase). ``check_source``: claim nothing when ``source_ip``
    is outside the config's ``allowed_source_ips`` (``services.routing.source_allowed``), which
    the caller then refuses. Every row has ``allowed_source_ips``.
    """
    if dedupe_key is None:
        row = conn.execute(INTAKE_CONFIG, {"config_id": config_id}).fetchone()
        return None if row is None else {**row, "claimed_by": None}
    return conn.execute(
        INTAKE_CONFIG_AND_CLAIM,
        {
            "config_id": config_id,
            "token_hash": token_hash,
            "dedupe_key": dedupe_key,
            "signal_id": signal_id,
            "check_source": check_source,
            "source_ip": source_ip,
        },
    ).fetchone()


# A parsed alert's whole intake in ONE statement — one round trip, run in autocommit, so one
# transaction: the config read, the dedupe claim (as INTAKE_CONFIG_AND_CLAIM), the decision
# (inactive config → rejected config_inactive; source address not on the config's allowlist →
# rejected source_not_allowed: every address when allowed_source_ips is null, else one inside a
# listed network, an unknown address refused; viewzenix.services.routing; key claimed earlier →
# duplicate; approval mode → awaiting_approval, no job, until approval_expires_at; else
# accepted), the symbol mapping (the alert's canonical ticker → the broker
# symbol: signals.ticker, the signal's ticker and the job's lock use it; signals.alert_ticker
# keeps the alert's),
# the execution job for an accepted alert (procrastinate's own procrastinate_defer_jobs_v1, as
# procrastinate's job manager calls it; it becomes visible to workers when the statement commits)
# and the signals row. Nothing is written for an unknown config or a wrong token (no row back).
INTAKE_PARSED_ALERT = """
with config as (
    select c.id, c.user_id, c.security_token_hash, c.is_active, c.dedupe_window_seconds,
        c.approval_mode, c.approval_timeout_seconds,
        (c.allowed_source_ips is null
            or coalesce(%(source_ip)s::inet <<= any(c.allowed_source_ips), false)) as source_allowed,
        m.broker_symbol
    from public.webhook_configs c
    left join public.symbol_mappings m on m.config_id = c.id and m.alert_ticker = %(canonical_ticker)s
    where c.id = %(config_id)s and c.security_token_hash = %(token_hash)s
), claim as (
    insert into public.signal_dedupe as d (config_id, dedupe_key, signal_id, expires_at)
    select id, %(dedupe_key)s, %(signal_id)s, now() + make_interval(secs => dedupe_window_seconds)
    from config
    where is_active and source_allowed and dedupe_window_seconds > 0
    on conflict (config_id, dedupe_key) do update set
        signal_id = case when d.expires_at <= now() then excluded.signal_id else d.signal_id end,
        expires_at = case when d.expires_at <= now() then excluded.expires_at else d.expires_at end
    returning d.signal_id
), decision as (
    select config.*, claim.signal_id as claimed_by,
        case
            when not config.is_active or not config.source_allowed then 'rejected'
            when claim.signal_id is not null and claim.signal_id <> %(signal_id)s then 'duplicate'
            when config.approval_mode then 'awaiting_approval'
            else 'accepted'
        end as outcome,
        case
            when not config.is_active then %(inactive_code)s
            when not config.source_allowed then %(source_code)s
        end as reject_code,
        case
            when not config.is_active then %(inactive_message)s
            when not config.source_allowed then %(source_message)s
        end as reject_message
    from config left join claim on true
), job as (
    select unnest(procrastinate_defer_jobs_v1(array[row(
        %(queue)s, %(task_name)s, 0,
        case when broker_symbol is null then %(lock)s else 'signal:' || id || ':' || broker_symbol end,
        null, %(job_args)s::jsonb, null
    )::procrastinate_job_to_defer_v1])) as id
    from decision where outcome = 'accepted'
), stored as (
    insert into public.signals (
        id, user_id, config_id, status, reject_code, reject_message, ticker, action, signal,
        payload, raw_body, content_type, source_ip, job_id, duplicate_of, approval_expires_at,
        alert_ticker
    )
    select %(signal_id)s, user_id, id, outcome, reject_code, reject_message,
        coalesce(broker_symbol, %(ticker)s), %(action)s,
        case
            when outcome = 'rejected' then null
            when broker_symbol is null then %(signal)s::jsonb
            else jsonb_set(%(signal)s::jsonb, '{ticker}', to_jsonb(broker_symbol))
        end,
        %(payload)s, %(raw_body)s, %(content_type)s, %(source_ip)s, (select id from job),
        case when outcome = 'duplicate' then claimed_by end,
        case when outcome = 'awaiting_approval'
            then now() + make_interval(secs => approval_timeout_seconds) end,
        case when broker_symbol is not null then %(ticker)s end
    from decision
    returning id
)
select decision.id, decision.outcome, decision.claimed_by, decision.reject_code,
    coalesce(decision.broker_symbol, %(ticker)s) as ticker, (select id from job) as job_id,
    (select count(*) from stored) as stored
from decision
"""


def intake_parsed_alert(conn: Connection, params: dict[str, Any]) -> dict[str, Any] | None:
    """Run ``INTAKE_PARSED_ALERT`` (one statement; ``conn`` in autocommit: one transaction).

    ``params``: its named parameters (``viewzenix.services.intake.receive`` builds them).
    Returns ``{id, outcome, claimed_by, reject_code, ticker, job_id, stored}`` — ``ticker`` as
    stored (the broker symbol when mapped); ``outcome`` ``accepted``, ``awaiting_approval``
    (approval mode: no job), ``duplicate`` (of ``claimed_by``) or ``rejected`` (``reject_code``:
    config_inactive or source_not_allowed) — or None when no config
    has this id and token hash (nothing written).
    """
    return conn.execute(INTAKE_PARSED_ALERT, params).fetchone()


def delete(conn: Connection, config_id: uuid.UUID) -> bool:
    return conn.execute("delete from public.webhook_configs where id = %s", (config_id,)).rowcount == 1


def list_page(
    conn: Connection,
    *,
    is_active: bool | None,
    broker: str | None,
    name_contains: str | None,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """Return (rows, total) of the caller's visible configs, newest first."""
    conditions = [("name ilike %(name)s", {"name": f"%{name_contains}%"})] if name_contains else []
    return select_page(
        conn,
        table="webhook_configs",
        equals={"is_active": is_active, "broker": broker},
        conditions=conditions,
        limit=limit,
        offset=offset,
    )


def trading_settings(row: dict[str, Any]) -> TradingSettings:
    """Build the domain TradingSettings from a webhook_configs row."""
    return TradingSettings(
        broker=row["broker"],
        quantity_type=QuantityType(row["quantity_type"]),
        quantity=Decimal(row["quantity"]),
        use_signal_quantity=row["use_signal_quantity"],
        order_type=OrderType(row["order_type"]),
        time_in_force=TimeInForce(row["time_in_force"]),
        allow_reverse=row["allow_reverse"],
        subtract_exit_quantity=row["subtract_exit_quantity"],
        risk=RiskRules(
            allowed_symbols=tuple(s.upper() for s in row["allowed_symbols"] or ()),
            max_position_qty=row["max_position_qty"],
            max_position_notional=row["max_position_notional"],
            allow_short=row["allow_short"],
            allow_add=row["allow_add"],
            max_signal_age_seconds=row["max_signal_age_seconds"],
            entries_paused=row["entries_paused"],
            trading_windows=stored_windows(row.get("trading_windows")),  # bad JSON: entries refused
        ),
        starting_cash=Decimal(row["starting_cash"]),
        slippage_bps=Decimal(row["slippage_bps"]),
        commission_rate=Decimal(row["commission_rate"]),
        commission_fixed=Decimal(row["commission_fixed"]),
        crypto_fee_rate=Decimal(row.get("crypto_fee_rate", "0.0025")),
        margin_multiplier=Decimal(row.get("margin_multiplier", 1)),
        max_quote_age_seconds=row.get("max_quote_age_seconds"),
        bracket_conflict=row.get("bracket_conflict", "stop_first"),
    )
