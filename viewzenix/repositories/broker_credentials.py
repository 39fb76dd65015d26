"""SQL for broker credentials per webhook config (``private.broker_credentials``).

Values are stored as the caller gives them: already encrypted (``viewzenix.crypto``). Functions
run on the caller's connection; as role ``authenticated`` RLS limits them to the caller's rows.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from viewzenix.db import Connection

ACCOUNT_DIGEST_KEY = "broker_credentials_account_digest_key"


class AccountTaken(Exception):
    """Another webhook config already holds credentials of this broker account."""


UPSERT = """
insert into private.broker_credentials as c (
    config_id, user_id, key_id_encrypted, secret_key_encrypted, key_id_hint, live, account_digest
) values (
    %(config_id)s, %(user_id)s, %(key_id_encrypted)s, %(secret_key_encrypted)s, %(key_id_hint)s, %(live)s,
    %(account_digest)s
)
on conflict (config_id) do update set
    key_id_encrypted = excluded.key_id_encrypted,
    secret_key_encrypted = excluded.secret_key_encrypted,
    key_id_hint = excluded.key_id_hint,
    live = excluded.live,
    account_digest = excluded.account_digest
returning config_id, user_id, broker, key_id_hint, live, created_at, updated_at
"""

SET_API_URL = """
update private.broker_credentials set api_url = %(api_url)s where config_id = %(config_id)s
"""

GET = "select * from private.broker_credentials where config_id = %(config_id)s"

SUMMARY = """
select config_id, broker, key_id_hint, live, created_at, updated_at
from private.broker_credentials where config_id = %(config_id)s
"""

DELETE = "delete from private.broker_credentials where config_id = %(config_id)s"

ALL_FOR_UPDATE = "select * from private.broker_credentials order by config_id for update"

REWRITE = """
update private.broker_credentials set key_id_encrypted = %(key_id_encrypted)s,
    secret_key_encrypted = %(secret_key_encrypted)s
where config_id = %(config_id)s
"""


def upsert(
    conn: Connection,
    *,
    config_id: uuid.UUID,
    user_id: uuid.UUID,
    key_id_encrypted: str,
    secret_key_encrypted: str,
    key_id_hint: str,
    live: bool,
    account_digest: str | None = None,
) -> dict[str, Any]:
    """Insert or replace a config's credentials; return the row without the encrypted values.

    Raises AccountTaken when another config holds the same ``account_digest`` (one broker
    account belongs to one config: unique index ``ACCOUNT_DIGEST_KEY``).
    """
    params = {
        "config_id": config_id,
        "user_id": user_id,
        "key_id_encrypted": key_id_encrypted,
        "secret_key_encrypted": secret_key_encrypted,
        "key_id_hint": key_id_hint,
        "live": live,
        "account_digest": account_digest,
    }
    try:
        return conn.execute(UPSERT, params).fetchone()
    except psycopg.errors.UniqueViolation as error:
        if error.diag.constraint_name == ACCOUNT_DIGEST_KEY:
            raise AccountTaken() from error
        raise


def set_api_url(conn: Connection, config_id: uuid.UUID, api_url: str | None) -> None:
    """Point a config's credentials at another Alpaca address (server-side only; see migration)."""
    conn.execute(SET_API_URL, {"config_id": config_id, "api_url": api_url})


def get(conn: Connection, config_id: uuid.UUID) -> dict[str, Any] | None:
    """Return the whole row (encrypted values included), or None."""
    return conn.execute(GET, {"config_id": config_id}).fetchone()


def summary(conn: Connection, config_id: uuid.UUID) -> dict[str, Any] | None:
    """Return what may be shown of a config's credentials (no secret), or None."""
    return conn.execute(SUMMARY, {"config_id": config_id}).fetchone()


def delete(conn: Connection, config_id: uuid.UUID) -> bool:
    """Delete a config's credentials; return whether there were any."""
    return conn.execute(DELETE, {"config_id": config_id}).rowcount == 1


def all_for_update(conn: Connection) -> list[dict[str, Any]]:
    """Lock and return every row (key rotation)."""
    return conn.execute(ALL_FOR_UPDATE).fetchall()


def rewrite(conn: Connection, config_id: uuid.UUID, key_id_encrypted: str, secret_key_encrypted: str) -> None:
    """Replace a row's encrypted values (key rotation: same secrets, new key)."""
    conn.execute(
        REWRITE,
        {
            "config_id": config_id,
            "key_id_encrypted": key_id_encrypted,
            "secret_key_encrypted": secret_key_encrypted,
        },
    )
