"""SQL for the API's idempotency keys (``private.idempotency_keys``).

A key is scoped per user: ``(user_id, key)``. While a request with a key runs, its transaction
holds a transaction-level advisory lock on that pair; Postgres releases it at commit or rollback,
also when the connection dies, so a crashed request never leaves a key stuck.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from psycopg.types.json import Jsonb

from viewzenix.db import Connection

TRY_LOCK = "select pg_try_advisory_xact_lock(%(lock_id)s) as locked"

FIND_LIVE = """
select fingerprint, response_status, response_headers, response_body
from private.idempotency_keys
where user_id = %(user_id)s and key = %(key)s and expires_at > now()
"""

# An expired row for the same key is replaced; a live one is left alone (and nothing returned).
SAVE = """
insert into private.idempotency_keys as k (
    user_id, key, fingerprint, method, path,
    response_status, response_headers, response_body, created_at, expires_at
) values (
    %(user_id)s, %(key)s, %(fingerprint)s, %(method)s, %(path)s,
    %(status)s, %(headers)s, %(body)s, now(), now() + %(ttl)s
)
on conflict (user_id, key) do update set
    fingerprint = excluded.fingerprint,
    method = excluded.method,
    path = excluded.path,
    response_status = excluded.response_status,
    response_headers = excluded.response_headers,
    response_body = excluded.response_body,
    created_at = excluded.created_at,
    expires_at = excluded.expires_at
where k.expires_at <= now()
returning k.user_id
"""

PURGE_EXPIRED = "delete from private.idempotency_keys where expires_at <= now()"


class KeyAlreadyStored(RuntimeError):
    """A live response is already stored for this key (only possible without the key's lock)."""


@dataclass(frozen=True)
class StoredResponse:
    """The first response to a keyed request, with the fingerprint of that request."""

    fingerprint: bytes
    status: int
    headers: dict[str, str]
    body: bytes

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> StoredResponse:
        return cls(
            fingerprint=bytes(row["fingerprint"]),
            status=row["response_status"],
            headers=dict(row["response_headers"]),
            body=bytes(row["response_body"]),
        )


def lock_id(user_id: uuid.UUID, key: str) -> int:
    """Return the advisory lock id (signed 64-bit) of ``(user_id, key)``."""
    digest = hashlib.sha256(f"idempotency-key\x00{user_id}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def try_lock(conn: Connection, user_id: uuid.UUID, key: str) -> bool:
    """Take the key's lock until the transaction ends; False when another transaction holds it."""
    return conn.execute(TRY_LOCK, {"lock_id": lock_id(user_id, key)}).fetchone()["locked"]


def find_live(conn: Connection, user_id: uuid.UUID, key: str) -> StoredResponse | None:
    """Return the stored, unexpired response for ``(user_id, key)``, or None."""
    row = conn.execute(FIND_LIVE, {"user_id": user_id, "key": key}).fetchone()
    return None if row is None else StoredResponse.from_row(row)


def save(
    conn: Connection,
    *,
    user_id: uuid.UUID,
    key: str,
    method: str,
    path: str,
    response: StoredResponse,
    ttl: timedelta,
) -> None:
    """Store the first response to ``(user_id, key)`` until now + ``ttl``, replacing an expired one.

    Raises KeyAlreadyStored when a live response is stored already (the caller holds no lock).
    """
    row = conn.execute(
        SAVE,
        {
            "user_id": user_id,
            "key": key,
            "fingerprint": response.fingerprint,
            "method": method,
            "path": path,
            "status": response.status,
            "headers": Jsonb(response.headers),
            "body": response.body,
            "ttl": ttl,
        },
    ).fetchone()
    if row is None:
        raise KeyAlreadyStored(f"a live response is already stored for idempotency key {key!r}")


def purge_expired(conn: Connection) -> int:
    """Delete every expired key; return how many. Run as the backend (login role or service_role)."""
    return conn.execute(PURGE_EXPIRED).rowcount
