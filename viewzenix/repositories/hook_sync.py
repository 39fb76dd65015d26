"""SQL of the Supabase sync: watchers, synced profiles, tombstones, the hook event log, drift checks.

Ordering rule in every write: a version is applied only when its source ``updated_at`` is newer
than the one applied (or one of them is unknown), and never over a tombstone at least as new.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from viewzenix.db import Connection

UPSERT_WATCHER = """
with blocked as (
    select 1 from private.hook_tombstones
    where target = 'watchers' and key = %(key)s
      and %(updated_at)s::timestamptz is not null and source_updated_at >= %(updated_at)s::timestamptz
), unblocked as (
    delete from private.hook_tombstones
    where target = 'watchers' and key = %(key)s and not exists (select 1 from blocked)
)
insert into public.watchers as w (user_id, symbol, timeframe, strategy, active, source_updated_at)
select %(user_id)s, %(symbol)s, %(timeframe)s, %(strategy)s, %(active)s, %(updated_at)s
where not exists (select 1 from blocked)
on conflict (user_id, symbol, timeframe) do update
    set strategy = excluded.strategy, active = excluded.active,
        source_updated_at = coalesce(excluded.source_updated_at, w.source_updated_at)
    where case
        when excluded.source_updated_at is null or w.source_updated_at is null
            then (w.strategy, w.active) is distinct from (excluded.strategy, excluded.active)
                 or w.source_updated_at is distinct from excluded.source_updated_at
        else w.source_updated_at < excluded.source_updated_at
             or (%(repair)s and w.source_updated_at = excluded.source_updated_at
                 and (w.strategy, w.active) is distinct from (excluded.strategy, excluded.active))
    end
returning (xmax = 0) as inserted
"""

WATCHER_VERSION = """
select w.source_updated_at, true as present from public.watchers w
where user_id = %(user_id)s and symbol = %(symbol)s and timeframe = %(timeframe)s
union all
select t.source_updated_at, false from private.hook_tombstones t
where target = 'watchers' and key = %(key)s
"""

DELETE_WATCHER = """
delete from public.watchers
where user_id = %(user_id)s and symbol = %(symbol)s and timeframe = %(timeframe)s
  and (%(updated_at)s::timestamptz is null or source_updated_at is null
       or source_updated_at <= %(updated_at)s::timestamptz)
returning 1
"""

TOMBSTONE = """
insert into private.hook_tombstones as t (target, key, source_updated_at)
values (%(target)s, %(key)s, %(updated_at)s)
on conflict (target, key) do update
    set source_updated_at = greatest(t.source_updated_at, excluded.source_updated_at), deleted_at = now()
"""

INSERT_EVENT = """
insert into private.hook_events (webhook_id, scheme, schema_name, table_name, operation, record_key,
    source_updated_at, outcome, reason, http_status, latency_ms, body_bytes, body_sha256, detail)
values (%(webhook_id)s, %(scheme)s, %(schema_name)s, %(table_name)s, %(operation)s, %(record_key)s,
    %(source_updated_at)s, %(outcome)s, %(reason)s, %(http_status)s, %(latency_ms)s, %(body_bytes)s,
    %(body_sha256)s, %(detail)s)
"""

WEBHOOK_ID_APPLIED = """
select 1 from private.hook_events where webhook_id = %s and outcome = 'applied' limit 1
"""

UPSERT_PROFILE = """
insert into public.users as u (id, email, display_name, avatar_url, username, source_updated_at)
select %(id)s, %(email)s, %(display_name)s, %(avatar_url)s,
    (select c from unnest(%(candidates)s::text[]) with ordinality as t(c, n)
     where not exists (select 1 from public.users x where lower(x.username) = lower(t.c))
     order by n limit 1),
    %(updated_at)s
where not exists (
    select 1 from private.hook_tombstones
    where target = 'users' and key = %(key)s
      and %(updated_at)s::timestamptz is not null and source_updated_at >= %(updated_at)s::timestamptz
)
on conflict (id) do update
    set email = excluded.email,
        display_name = case when %(set_display_name)s then excluded.display_name else u.display_name end,
        avatar_url = case when %(set_avatar_url)s then excluded.avatar_url else u.avatar_url end,
        username = coalesce(u.username, excluded.username),
        source_updated_at = coalesce(excluded.source_updated_at, u.source_updated_at),
        deleted_at = null
    where case
        when excluded.source_updated_at is null or u.source_updated_at is null
            then u.email is distinct from excluded.email or u.username is null or u.deleted_at is not null
                 or (%(set_display_name)s and u.display_name is distinct from excluded.display_name)
                 or (%(set_avatar_url)s and u.avatar_url is distinct from excluded.avatar_url)
        else u.source_updated_at < excluded.source_updated_at
             or (%(repair)s and u.source_updated_at = excluded.source_updated_at
                 and (u.email is distinct from excluded.email or u.username is null))
    end
returning (xmax = 0) as inserted, username
"""

PROFILE_VERSION = """
select source_updated_at, deleted_at is null as present from public.users where id = %(id)s
union all
select source_updated_at, false from private.hook_tombstones where target = 'users' and key = %(key)s
"""

DELETE_PROFILE = """
delete from public.users
where id = %(id)s and (%(updated_at)s::timestamptz is null or source_updated_at is null
                       or source_updated_at <= %(updated_at)s::timestamptz)
returning 1
"""

ANONYMISE_PROFILE = """
update public.users
set email = null, display_name = null, avatar_url = null, username = null,
    deleted_at = now(), source_updated_at = coalesce(%(updated_at)s, source_updated_at)
where id = %(id)s and deleted_at is null
  and (%(updated_at)s::timestamptz is null or source_updated_at is null
       or source_updated_at <= %(updated_at)s::timestamptz)
returning 1
"""

DEACTIVATE_CONFIGS = "update public.webhook_configs set is_active = false where user_id = %s and is_active"


def watcher_key(user_id: uuid.UUID | str, symbol: str, timeframe: str) -> str:
    """Return the tombstone/event key of a watcher: ``<user_id>/<symbol>/<timeframe>``."""
    return f"{user_id}/{symbol}/{timeframe}"


def upsert_watcher(conn: Connection, row: dict[str, Any], *, repair: bool = False) -> bool | None:
    """Apply a watcher version; return True inserted, False updated, None ignored (not newer).

    ``row``: user_id, symbol, timeframe, strategy (dict), active, updated_at (or None).
    ``repair``: also apply a version as new as ours whose content differs (drift repair).
    """
    params = {**row, "strategy": Jsonb(row["strategy"]), "key": watcher_key(**_key(row)), "repair": repair}
    found = conn.execute(UPSERT_WATCHER, params).fetchone()
    return None if found is None else found["inserted"]


def watcher_version(conn: Connection, row: dict[str, Any]) -> tuple[datetime | None, bool] | None:
    """Return ``(source_updated_at, present)`` applied for ``row``'s key (tombstone: present False)."""
    found = conn.execute(WATCHER_VERSION, {**_key(row), "key": watcher_key(**_key(row))}).fetchone()
    return None if found is None else (found["source_updated_at"], found["present"])


def delete_watcher(conn: Connection, key: dict[str, Any], updated_at: datetime | None) -> bool:
    """Delete the watcher at ``key`` unless a newer version is applied; tombstone it. True if deleted."""
    deleted = conn.execute(DELETE_WATCHER, {**key, "updated_at": updated_at}).fetchone() is not None
    conn.execute(TOMBSTONE, {"target": "watchers", "key": watcher_key(**key), "updated_at": updated_at})
    return deleted


def _key(row: dict[str, Any]) -> dict[str, Any]:
    return {"user_id": row["user_id"], "symbol": row["symbol"], "timeframe": row["timeframe"]}


def upsert_profile(
    conn: Connection, profile: dict[str, Any], candidates: Sequence[str], *, repair: bool = False
) -> dict[str, Any] | None:
    """Apply a profile version; return ``{inserted, username}``, or None when ignored (not newer).

    ``profile``: id, email, display_name, avatar_url, updated_at, set_display_name,
    set_avatar_url (False keeps ours: the source did not change it). ``candidates``: usernames to
    try in order for a new profile (the first one free is taken).
    """
    params = {**profile, "candidates": list(candidates), "key": str(profile["id"]), "repair": repair}
    return conn.execute(UPSERT_PROFILE, params).fetchone()


def profile_version(conn: Connection, user_id: uuid.UUID) -> tuple[datetime | None, bool] | None:
    """Return ``(source_updated_at, present)`` of a profile (deleted or tombstoned: present False)."""
    found = conn.execute(PROFILE_VERSION, {"id": user_id, "key": str(user_id)}).fetchone()
    return None if found is None else (found["source_updated_at"], found["present"])


def remove_profile(conn: Connection, user_id: uuid.UUID, updated_at: datetime | None, mode: str) -> bool:
    """Delete or anonymise a profile (``mode``), turn its configs off, tombstone it. True if changed."""
    sql = DELETE_PROFILE if mode == "delete" else ANONYMISE_PROFILE
    changed = conn.execute(sql, {"id": user_id, "updated_at": updated_at}).fetchone() is not None
    if changed and mode != "delete":
        conn.execute(DEACTIVATE_CONFIGS, (user_id,))
    conn.execute(TOMBSTONE, {"target": "users", "key": str(user_id), "updated_at": updated_at})
    return changed


def webhook_id_applied(conn: Connection, webhook_id: str) -> bool:
    """True when a delivery with this Standard Webhooks id was applied already."""
    return conn.execute(WEBHOOK_ID_APPLIED, (webhook_id,)).fetchone() is not None


def insert_event(conn: Connection, event: dict[str, Any]) -> None:
    """Record one delivery in ``private.hook_events`` (keys: the table's columns; missing = null)."""
    params = dict.fromkeys(
        (
            "webhook_id",
            "scheme",
            "schema_name",
            "table_name",
            "operation",
            "record_key",
            "source_updated_at",
            "outcome",
            "reason",
            "http_status",
            "latency_ms",
            "body_bytes",
            "body_sha256",
            "detail",
        )
    )
    params.update(event)
    if params["detail"] is not None:
        params["detail"] = Jsonb(params["detail"], dumps=lambda v: json.dumps(v, default=str))
    conn.execute(INSERT_EVENT, params)


def purge_history(conn: Connection, retention_days: int) -> dict[str, int]:
    """Delete receiver events and deletion tombstones older than ``retention_days``; return counts.

    A tombstone keeps a late INSERT/UPDATE from bringing a deleted row back; deliveries are not
    retried for days (Supabase's never, our signing trigger's pg_net call times out in seconds),
    so after the retention a tombstone guards nothing. Returns ``{"events", "tombstones"}``.
    """
    events = conn.execute(
        "delete from private.hook_events where received_at < now() - make_interval(days => %s)",
        (retention_days,),
    ).rowcount
    tombstones = conn.execute(
        "delete from private.hook_tombstones where deleted_at < now() - make_interval(days => %s)",
        (retention_days,),
    ).rowcount
    return {"events": events, "tombstones": tombstones}
