"""SQL for the per-webhook count of refused hits (old token, rate limited): one row per kind."""

from __future__ import annotations

import uuid
from typing import Any

from viewzenix.db import Connection

# Counts only hits on a webhook that exists (the owner is taken from it); nothing for unknown ids.
RECORD = """
insert into public.webhook_refusals (config_id, user_id, code, refused, last_message)
select id, user_id, %(code)s, %(hits)s, %(message)s from public.webhook_configs where id = %(config_id)s
on conflict (config_id, code) do update set
    refused = webhook_refusals.refused + excluded.refused, last_at = now(),
    last_message = excluded.last_message
"""

# Refused hits of the config by kind, with the turned-off refusals from the signals it stored.
FOR_CONFIG = """
select code, refused, first_at, last_at, last_message
from public.webhook_refusals where config_id = %(config_id)s
union all
select reject_code, count(*)::int, min(received_at), max(received_at),
    (array_agg(reject_message order by received_at desc))[1]
from public.signals
where config_id = %(config_id)s and status = 'rejected' and reject_code = 'config_inactive'
group by reject_code
order by last_at desc
"""


def record(conn: Connection, config_id: uuid.UUID, code: str, message: str, hits: int = 1) -> None:
    """Count ``hits`` refused hits of ``code`` on the config (no row when the config does not exist)."""
    conn.execute(RECORD, {"config_id": config_id, "code": code, "message": message, "hits": hits})


def for_config(conn: Connection, config_id: uuid.UUID) -> list[dict[str, Any]]:
    """Return ``[{code, refused, first_at, last_at, last_message}]``, the latest refusal first."""
    return conn.execute(FOR_CONFIG, {"config_id": config_id}).fetchall()
