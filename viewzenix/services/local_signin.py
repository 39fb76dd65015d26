"""Local mode sign-in (no SUPABASE_URL): one-time codes exchanged for a local access token.

``make run`` prints a dashboard address carrying a fresh code (``issue_code``); the sign-in page
posts it to ``POST /auth/local/exchange`` (``exchange``), which consumes it and returns a token
signed by ``LocalSigner``. A code is 128 bits from ``secrets``, valid ``CODE_TTL`` and usable once;
only its SHA-256 is stored (``private.local_signin_codes``). Never reachable when
SUPABASE_URL is set: the runtime then has no local signer and the route answers 404.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta

from viewzenix.auth import LocalSigner
from viewzenix.db import Database
from viewzenix.exceptions import ViewzenixError
from viewzenix.repositories import webhook_configs as configs_repo

CODE_TTL = timedelta(hours=12)
TOKEN_TTL_SECONDS = 12 * 3600


class InvalidSigninCode(ViewzenixError):
    """This sign-in code is unknown, used already or expired: run `make run` (or
    `flask --app wsgi signin-code EMAIL`) for a new one."""

    status = 401
    code = "invalid_signin_code"


def ensure_local_user(db: Database, email: str) -> uuid.UUID:
    """Create (or find) a local-mode user: a row in the ``auth.users`` stand-in and its profile.

    Local mode only (plain Postgres, no Supabase Auth). Returns the user id.
    """
    with db.transaction() as conn:
        row = conn.execute(
            "insert into auth.users (id, email) values (%s, %s) "
            "on conflict (email) do update set updated_at = now() returning id",
            (uuid.uuid4(), email),
        ).fetchone()
        configs_repo.ensure_user(conn, row["id"], email)
    return row["id"]


def _digest(code: str) -> bytes:
    return hashlib.sha256(code.encode("utf-8")).digest()


def issue_code(db: Database, email: str, *, admin: bool = False) -> str:
    """Store a new one-time code for local user ``email``; return the code (shown once).

    ``admin``: the token it is exchanged for carries ``app_metadata.role = "admin"``.
    """
    code = secrets.token_urlsafe(16)
    with db.transaction() as conn:
        conn.execute("delete from private.local_signin_codes where expires_at < now()")
        conn.execute(
            "insert into private.local_signin_codes (code_hash, email, admin, expires_at) "
            "values (%s, %s, %s, now() + %s)",
            (_digest(code), email, admin, CODE_TTL),
        )
    return code


def exchange(db: Database, signer: LocalSigner, code: str) -> dict[str, object]:
    """Consume ``code``; return ``{"access_token", "expires_in" (seconds), "email"}``.

    Raises InvalidSigninCode (401) when the code is unknown, used or expired.
    """
    with db.transaction() as conn:
        row = conn.execute(
            "delete from private.local_signin_codes where code_hash = %s and expires_at > now() "
            "returning email, admin",
            (_digest(code),),
        ).fetchone()
    if row is None:
        raise InvalidSigninCode()
    email = row["email"]
    user_id = ensure_local_user(db, email)
    app_metadata = {"role": "admin"} if row["admin"] else None
    token = signer.issue(user_id, email, app_metadata=app_metadata, ttl_seconds=TOKEN_TTL_SECONDS)
    return {"access_token": token, "expires_in": TOKEN_TTL_SECONDS, "email": email}
