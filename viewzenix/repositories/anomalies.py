"""SQL for the reports the ledger refused as impossible (``public.order_anomalies``).

Written only by the ledger; read by reconciliation (counted with each run) and the REST API
(as the caller, where Row-Level Security restricts the rows).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from viewzenix.db import Connection

INSERT = """
insert into public.order_anomalies (config_id, user_id, order_id, client_order_id, kind, detail, fingerprint)
values (%(config_id)s, %(user_id)s, %(order_id)s, %(client_order_id)s, %(kind)s, %(detail)s, %(fingerprint)s)
on conflict (config_id, fingerprint) do nothing
returning *
"""

SINCE = """
select * from public.order_anomalies
where config_id = %(config_id)s and (%(since)s::timestamptz is null or created_at >= %(since)s)
order by created_at, id
"""


def insert(conn: Connection, **values: Any) -> dict[str, Any] | None:
    """Record one anomaly; None when the same one (``fingerprint``) is recorded already."""
    return conn.execute(INSERT, {**values, "detail": Jsonb(values["detail"])}).fetchone()


def since(conn: Connection, config_id: uuid.UUID, since: datetime | None) -> list[dict[str, Any]]:
    """Return the config's anomalies recorded since ``since`` (all when None), oldest first."""
    return conn.execute(SINCE, {"config_id": config_id, "since": since}).fetchall()
