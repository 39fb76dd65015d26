"""Read-side of the hook event log and drift checks: last events, counts, latency percentiles."""

from __future__ import annotations

from typing import Any

from viewzenix.db import Connection

LAST_EVENTS = """
select schema_name || '.' || table_name as source, max(received_at) as last_event_at,
       max(received_at) filter (where outcome = 'applied') as last_applied_at
from private.hook_events where table_name is not null
group by 1
"""

OUTCOMES = """
select schema_name || '.' || table_name as source, outcome, count(*) as count,
       percentile_cont(array[0.5, 0.95, 0.99]) within group (order by latency_ms) as p
from private.hook_events
where received_at > now() - make_interval(secs => %(window)s)
group by 1, 2
"""

LAST_CHECKS = """
select distinct on (target) target, source, started_at, finished_at, source_rows, target_rows,
       missing, extra, differing, drift_rate, repaired, error
from private.sync_checks order by target, started_at desc
"""


def per_table(conn: Connection, *, window_seconds: int) -> dict[str, Any]:
    """Return ``{"<schema>.<table>" | "unrouted": {last_event_at, last_applied_at, outcomes}}``.

    ``outcomes``: ``{outcome: {count, p50_ms, p95_ms, p99_ms}}`` over the last ``window_seconds``.
    Refusals before the payload was read (bad signature) count under ``unrouted``.
    """
    tables: dict[str, Any] = {}
    for row in conn.execute(LAST_EVENTS):
        tables[row["source"]] = {
            "last_event_at": row["last_event_at"].isoformat(),
            "last_applied_at": row["last_applied_at"].isoformat() if row["last_applied_at"] else None,
            "outcomes": {},
        }
    for row in conn.execute(OUTCOMES, {"window": window_seconds}):
        source = row["source"] or "unrouted"
        entry = tables.setdefault(source, {"last_event_at": None, "last_applied_at": None, "outcomes": {}})
        p = row["p"] or [None, None, None]
        entry["outcomes"][row["outcome"]] = {
            "count": row["count"],
            **{
                f"p{q}_ms": round(v, 3) if v is not None else None
                for q, v in zip((50, 95, 99), p, strict=True)
            },
        }
    return tables


def last_sync_checks(conn: Connection) -> dict[str, Any]:
    """Return the last drift check of each target: counts, drift rate (percent), when, whether it failed.

    The error's text stays in ``private.sync_checks`` (it may name hosts and users): ``failed``
    says only whether there was one.
    """
    hidden = ("target", "started_at", "finished_at", "drift_rate", "error")
    return {
        row["target"]: {
            **{k: v for k, v in row.items() if k not in hidden},
            "failed": row.get("error") is not None,
            "drift_rate": float(row["drift_rate"]),
            "started_at": row["started_at"].isoformat(),
            "finished_at": row["finished_at"].isoformat() if row["finished_at"] else None,
        }
        for row in conn.execute(LAST_CHECKS)
    }
