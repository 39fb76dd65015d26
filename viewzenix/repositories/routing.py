"""SQL for routing controls (issue 17 items 5-7): source allowlists, symbol mappings, webhook groups.

Every statement here runs on the caller's connection: under a user's claims (RLS holds) for the
REST API, or as the backend for intake (``GROUP_INTAKE``), which authenticates by token hash.
"""

from __future__ import annotations

import uuid
from typing import Any

from viewzenix.db import Connection


def allowed_source_ips(conn: Connection, config_id: uuid.UUID) -> dict[str, Any] | None:
    """Return ``{id, allowed_source_ips}`` of a visible config, or None."""
    return conn.execute(
        "select id, allowed_source_ips from public.webhook_configs where id = %s", (config_id,)
    ).fetchone()


def set_allowed_source_ips(
    conn: Connection, config_id: uuid.UUID, networks: list[str] | None
) -> dict[str, Any] | None:
    """Set the config's allowlist (None: every address); return ``{id, allowed_source_ips}`` or None."""
    return conn.execute(
        "update public.webhook_configs set allowed_source_ips = %s::cidr[] where id = %s "
        "returning id, allowed_source_ips",
        (networks, config_id),
    ).fetchone()


def mappings(conn: Connection, config_id: uuid.UUID) -> list[dict[str, Any]]:
    """Return the config's ``[{alert_ticker, broker_symbol, created_at}]`` by alert ticker."""
    return conn.execute(
        "select alert_ticker, broker_symbol, created_at from public.symbol_mappings "
        "where config_id = %s order by alert_ticker",
        (config_id,),
    ).fetchall()


def replace_mappings(
    conn: Connection, config_id: uuid.UUID, user_id: uuid.UUID, pairs: list[tuple[str, str]]
) -> None:
    """Replace the config's whole mapping table with ``pairs`` of (alert ticker, broker symbol)."""
    conn.execute("delete from public.symbol_mappings where config_id = %s", (config_id,))
    if pairs:
        with conn.cursor() as cur:
            cur.executemany(
                "insert into public.symbol_mappings (config_id, user_id, alert_ticker, broker_symbol) "
                "values (%s, %s, %s, %s)",
                [(config_id, user_id, alert, broker) for alert, broker in pairs],
            )


def broker_symbol(conn: Connection, config_id: uuid.UUID, canonical_ticker: str) -> str | None:
    """Return the broker symbol mapped from ``canonical_ticker`` on the config, or None."""
    row = conn.execute(
        "select broker_symbol from public.symbol_mappings where config_id = %s and alert_ticker = %s",
        (config_id, canonical_ticker),
    ).fetchone()
    return row["broker_symbol"] if row else None


def visible_config_ids(conn: Connection, config_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Return which of ``config_ids`` the connection's user can see (RLS: their own)."""
    rows = conn.execute("select id from public.webhook_configs where id = any(%s)", (config_ids,)).fetchall()
    return {row["id"] for row in rows}


GROUPS = """
select g.id, g.user_id, g.name, g.token_hint, g.created_at,
    coalesce(array_agg(m.config_id order by m.position) filter (where m.config_id is not null), '{}')
        as config_ids
from public.webhook_groups g left join public.webhook_group_members m on m.group_id = g.id
{where}
group by g.id
order by g.created_at desc
"""


def groups(conn: Connection) -> list[dict[str, Any]]:
    """Return the visible groups with their members' ``config_ids`` (in order), newest first."""
    return conn.execute(GROUPS.replace("{where}", "")).fetchall()


def group(conn: Connection, group_id: uuid.UUID) -> dict[str, Any] | None:
    """Return one visible group with its ``config_ids``, or None."""
    return conn.execute(GROUPS.replace("{where}", "where g.id = %s"), (group_id,)).fetchone()


def insert_group(
    conn: Connection, *, user_id: uuid.UUID, name: str, token_hash: bytes, token_hint: str
) -> uuid.UUID:
    """Insert a group; return its id."""
    return conn.execute(
        "insert into public.webhook_groups (user_id, name, security_token_hash, token_hint) "
        "values (%s, %s, %s, %s) returning id",
        (user_id, name, token_hash, token_hint),
    ).fetchone()["id"]


def update_group(conn: Connection, group_id: uuid.UUID, values: dict[str, Any]) -> bool:
    """Set ``name`` and/or the token (``security_token_hash``, ``token_hint``); False if not visible."""
    allowed = {"name", "security_token_hash", "token_hint"}
    columns = [c for c in values if c in allowed]
    if not columns:
        return group(conn, group_id) is not None
    assignments = ", ".join(f"{c} = %s" for c in columns)  # names from the fixed set above
    cur = conn.execute(
        f"update public.webhook_groups set {assignments} where id = %s",  # noqa: S608
        [values[c] for c in columns] + [group_id],
    )
    return cur.rowcount == 1


def set_members(
    conn: Connection, group_id: uuid.UUID, user_id: uuid.UUID, config_ids: list[uuid.UUID]
) -> None:
    """Replace the group's members with ``config_ids`` (their order kept)."""
    conn.execute("delete from public.webhook_group_members where group_id = %s", (group_id,))
    if config_ids:
        with conn.cursor() as cur:
            cur.executemany(
                "insert into public.webhook_group_members (group_id, config_id, user_id, position) "
                "values (%s, %s, %s, %s)",
                [(group_id, config_id, user_id, i) for i, config_id in enumerate(config_ids)],
            )


def delete_group(conn: Connection, group_id: uuid.UUID) -> bool:
    """Delete a visible group (its members go with it); False if not found."""
    return conn.execute("delete from public.webhook_groups where id = %s", (group_id,)).rowcount == 1


# A parsed alert on a group's URL, in ONE statement (one round trip, one transaction), per member
# config as INTAKE_PARSED_ALERT does for one config (viewzenix/repositories/webhook_configs.py):
# each member gets its own signal id, dedupe claim (per config: a resend to the group is a
# duplicate on every member), decision (config off → config_inactive; source not on the member's
# allowlist → source_not_allowed; claimed earlier → duplicate; approval mode → awaiting_approval,
# no job; else accepted), symbol mapping,
# execution job (its own per-(config, symbol) lock) and signals row, linked by group_id and
# fan_out_id. One row per member in the group's order; one row with a null config_id for a group
# without members; no row for an unknown group or a wrong token (nothing written).
GROUP_INTAKE = """
with grp as (
    select id, user_id from public.webhook_groups
    where id = %(group_id)s and security_token_hash = %(token_hash)s
), config as materialized (
    select c.id, c.user_id, c.is_active, c.dedupe_window_seconds, gm.position,
        c.approval_mode, c.approval_timeout_seconds,
        (c.allowed_source_ips is null
            or coalesce(%(source_ip)s::inet <<= any(c.allowed_source_ips), false)) as source_allowed,
        m.broker_symbol, gen_random_uuid() as signal_id
    from grp
    join public.webhook_group_members gm on gm.group_id = grp.id
    join public.webhook_configs c on c.id = gm.config_id and c.user_id = grp.user_id
    left join public.symbol_mappings m on m.config_id = c.id and m.alert_ticker = %(canonical_ticker)s
), claim as (
    insert into public.signal_dedupe as d (config_id, dedupe_key, signal_id, expires_at)
    select id, %(dedupe_key)s, signal_id, now() + make_interval(secs => dedupe_window_seconds)
    from config
    where is_active and source_allowed and dedupe_window_seconds > 0
    on conflict (config_id, dedupe_key) do update set
        signal_id = case when d.expires_at <= now() then excluded.signal_id else d.signal_id end,
        expires_at = case when d.expires_at <= now() then excluded.expires_at else d.expires_at end
    returning d.config_id, d.signal_id
), decision as materialized (
    select config.*, claim.signal_id as claimed_by,
        case
            when not config.is_active or not config.source_allowed then 'rejected'
            when claim.signal_id is not null and claim.signal_id <> config.signal_id then 'duplicate'
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
    from config left join claim on claim.config_id = config.id
), job as materialized (
    select d.id as config_id, (
        select j from unnest(procrastinate_defer_jobs_v1(array[row(
            %(queue)s, %(task_name)s, 0,
            'signal:' || d.id || ':' || coalesce(d.broker_symbol, %(canonical_ticker)s),
            null, jsonb_build_object('signal_id', d.signal_id::text), null
        )::procrastinate_job_to_defer_v1])) as j
    ) as job_id
    from decision d where d.outcome = 'accepted'
), stored as (
    insert into public.signals (
        id, user_id, config_id, status, reject_code, reject_message, ticker, action, signal,
        payload, raw_body, content_type, source_ip, job_id, duplicate_of, alert_ticker,
        group_id, fan_out_id, approval_expires_at
    )
    select d.signal_id, d.user_id, d.id, d.outcome, d.reject_code, d.reject_message,
        coalesce(d.broker_symbol, %(ticker)s), %(action)s,
        case
            when d.outcome = 'rejected' then null
            when d.broker_symbol is null then %(signal)s::jsonb
            else jsonb_set(%(signal)s::jsonb, '{ticker}', to_jsonb(d.broker_symbol))
        end,
        %(payload)s, %(raw_body)s, %(content_type)s, %(source_ip)s, job.job_id,
        case when d.outcome = 'duplicate' then d.claimed_by end,
        case when d.broker_symbol is not null then %(ticker)s end,
        %(group_id)s, %(fan_out_id)s,
        case when d.outcome = 'awaiting_approval'
            then now() + make_interval(secs => d.approval_timeout_seconds) end
    from decision d left join job on job.config_id = d.id
    returning id
)
select grp.id as group_id, d.id as config_id, d.signal_id, d.outcome, d.claimed_by, d.reject_code,
    d.reject_message, coalesce(d.broker_symbol, %(ticker)s) as ticker, job.job_id,
    (select count(*) from stored) as stored
from grp
left join (decision d left join job on job.config_id = d.id) on true
order by d.position
"""


def group_intake(conn: Connection, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Run ``GROUP_INTAKE`` (one statement; ``conn`` in autocommit: one transaction).

    Returns ``[{group_id, config_id, signal_id, outcome, claimed_by, reject_code, reject_message,
    ticker, job_id, stored}]``: one per member (``config_id`` None for a group without members);
    empty for an unknown group or a wrong token hash.
    """
    return conn.execute(GROUP_INTAKE, params).fetchall()


GROUP_MEMBERS_FOR_INTAKE = """
select g.id as group_id, g.security_token_hash as group_token_hash, c.id, c.user_id,
    c.security_token_hash, c.is_active, c.dedupe_window_seconds, c.notification_preferences,
    c.allowed_source_ips, null::uuid as claimed_by
from public.webhook_groups g
left join (public.webhook_group_members gm
    join public.webhook_configs c on c.id = gm.config_id) on gm.group_id = g.id and c.user_id = g.user_id
where g.id = %(group_id)s
order by gm.position
"""


def group_members_for_intake(conn: Connection, group_id: uuid.UUID) -> list[dict[str, Any]]:
    """Return the group's member configs as ``get_for_intake`` rows, plus ``group_token_hash``.

    One row with ``id`` None for a group without members; none for an unknown group.
    """
    return conn.execute(GROUP_MEMBERS_FOR_INTAKE, {"group_id": group_id}).fetchall()


def link_fan_out(
    conn: Connection, signal_ids: list[uuid.UUID], group_id: uuid.UUID, fan_out_id: uuid.UUID
) -> None:
    """Mark stored signals as members of one group delivery."""
    conn.execute(
        "update public.signals set group_id = %s, fan_out_id = %s where id = any(%s)",
        (group_id, fan_out_id, signal_ids),
    )


def notification_preferences(conn: Connection, config_ids: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
    """Return ``{config_id: notification_preferences}`` of these configs."""
    rows = conn.execute(
        "select id, notification_preferences from public.webhook_configs where id = any(%s)", (config_ids,)
    ).fetchall()
    return {row["id"]: row["notification_preferences"] for row in rows}
