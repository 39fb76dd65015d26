"""SQL for dedupe claims (public.signal_dedupe): which signal owns a live dedupe key, until when.

Intake claims a key in the statement that reads the webhook config
(``webhook_configs.INTAKE_CONFIG_AND_CLAIM``), so deduplication costs the hot path no round trip.
"""

from __future__ import annotations

from viewzenix.db import Connection

PURGE_EXPIRED = "delete from public.signal_dedupe where expires_at <= now()"


def purge_expired(conn: Connection) -> int:
    """Delete the claims whose window has passed; return how many. Safe beside intake.

    Meant for a periodic job: a key that comes back after its window takes its expired row over
    anyway, so the purge only bounds the table's size.
    """
    return conn.execute(PURGE_EXPIRED).rowcount
