"""Broker credentials per webhook config: set (write-only), describe, delete, test, rotate the key.

Alpaca API key id and secret are encrypted with the server key (``viewzenix.crypto``) before they
reach the database and decrypted only in the process that calls Alpaca (the worker, or the web
process for "test connection"). The API never returns them: only ``key_id_hint`` (the key id's
last 4 characters), ``live`` and timestamps.

Paper is the default. Live trading needs ``live: true`` in the request *and* the config's
credentials being live keys: Alpaca's paper and live keys are separate, and paper keys sent to
the live address are refused (the test connection says so).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Any

from viewzenix import crypto
from viewzenix.brokers import BrokerNotAvailable
from viewzenix.brokers.alpaca import AlpacaBroker, AlpacaCredentials, BrokerAuthFailed
from viewzenix.brokers.base import BrokerError, BrokerUnavailable
from viewzenix.db import Database
from viewzenix.exceptions import NotFound, ViewzenixError
from viewzenix.repositories import broker_credentials as repo
from viewzenix.repositories import webhook_configs as configs_repo
from viewzenix.services.common import Caller

logger = logging.getLogger(__name__)

__all__ = [
    "AlpacaAccountInUse",
    "CredentialsKeyMissing",
    "NoCredentials",
    "delete",
    "describe",
    "load_alpaca_credentials",
    "rotate_encryption_key",
    "set_alpaca_credentials",
    "store_alpaca_credentials",
    "test_connection",
]


class CredentialsKeyMissing(ViewzenixError):
    """The server has no CREDENTIALS_ENCRYPTION_KEY, so it cannot store or use broker credentials."""

    status = 503
    code = "credentials_key_missing"


class AlpacaAccountInUse(ViewzenixError):
    """These Alpaca keys belong to an account another webhook config already trades: one account, one config.

    Alpaca allows one trade_updates stream per account, and two configs on one account would see
    each other's orders and positions as drift (and a repair would adopt them). Remove the keys
    from the other config first, or use another account's keys.
    """

    status = 409
    code = "alpaca_account_in_use"


def _upsert(conn: Any, **values: Any) -> dict[str, Any]:
    try:
        return repo.upsert(conn, **values)
    except repo.AccountTaken as error:
        raise AlpacaAccountInUse() from error


def account_digest(key_id: str, live: bool) -> str:
    """Return the digest naming the Alpaca account of ``key_id`` (paper and live keys differ)."""
    return hashlib.sha256(f"alpaca:{'live' if live else 'paper'}:{key_id}".encode()).hexdigest()


class NoCredentials(ViewzenixError):
    """This webhook config has no Alpaca credentials: set them first (PUT …/alpaca-credentials)."""

    status = 409
    code = "credentials_missing"


def _hint(key_id: str) -> str:
    return key_id[-4:]


def _encrypt(text: str) -> str:
    try:
        return crypto.encrypt(text)
    except crypto.CipherNotConfigured as error:
        raise CredentialsKeyMissing() from error


def store_alpaca_credentials(
    db: Database,
    config_id: uuid.UUID,
    *,
    key_id: str,
    secret_key: str,
    live: bool = False,
    api_url: str | None = None,
) -> None:
    """Store a config's Alpaca credentials as the backend (the single-tenant seed, the operator CLI).

    ``api_url`` points the config at another address than Alpaca's paper/live one (a proxy, a
    fake). Raises NotFound for an unknown config, CredentialsKeyMissing.
    """
    key_id_encrypted, secret_encrypted = _encrypt(key_id), _encrypt(secret_key)
    with db.transaction() as conn:
        config = configs_repo.get(conn, config_id)
        if config is None:
            raise NotFound("No webhook config with this id.")
        _upsert(
            conn,
            config_id=config_id,
            user_id=config["user_id"],
            key_id_encrypted=key_id_encrypted,
            secret_key_encrypted=secret_encrypted,
            key_id_hint=_hint(key_id),
            live=live,
            account_digest=account_digest(key_id, live),
        )
        repo.set_api_url(conn, config_id, api_url)


def set_alpaca_credentials(
    db: Database, caller: Caller, config_id: uuid.UUID, *, key_id: str, secret_key: str, live: bool
) -> dict[str, Any]:
    """Set (or replace) the caller's config's Alpaca key id and secret; return ``describe``'s shape.

    Runs as the caller (RLS). A server-side address override (``api_url``) is kept.
    Raises NotFound (also for another user's config), CredentialsKeyMissing.
    """
    key_id_encrypted, secret_encrypted = _encrypt(key_id), _encrypt(secret_key)
    with db.transaction(caller.claims) as conn:
        if configs_repo.get(conn, config_id) is None:
            raise NotFound("No webhook config with this id.")
        row = _upsert(
            conn,
            config_id=config_id,
            user_id=caller.user_id,
            key_id_encrypted=key_id_encrypted,
            secret_key_encrypted=secret_encrypted,
            key_id_hint=_hint(key_id),
            live=live,
            account_digest=account_digest(key_id, live),
        )
    logger.info(
        "alpaca credentials set (%s)",
        "live" if live else "paper",
        extra={"action": "credentials_set", "config_id": config_id},
    )
    return _described(row)


def describe(db: Database, caller: Caller, config_id: uuid.UUID) -> dict[str, Any]:
    """Return ``{configured, broker, key_id_hint, live, created_at, updated_at}`` — never a secret.

    Raises NotFound for an unknown config (or another user's).
    """
    with db.transaction(caller.claims) as conn:
        if configs_repo.get(conn, config_id) is None:
            raise NotFound("No webhook config with this id.")
        row = repo.summary(conn, config_id)
    return _described(row)


def delete(db: Database, caller: Caller, config_id: uuid.UUID) -> None:
    """Forget a config's credentials. Raises NotFound for an unknown config or no credentials."""
    with db.transaction(caller.claims) as conn:
        if configs_repo.get(conn, config_id) is None or not repo.delete(conn, config_id):
            raise NotFound("No Alpaca credentials for this webhook config.")


def test_connection(db: Database, caller: Caller, config_id: uuid.UUID) -> dict[str, Any]:
    """Check the config's stored keys against Alpaca's account endpoint; say what is wrong.

    Returns ``{ok, live, code, message, account}``: ``ok`` with the account (number, status,
    cash, equity, buying power), or ``ok: false`` with a code — ``invalid_credentials`` (Alpaca
    refused the keys; the message names paper vs live), ``alpaca_unavailable`` (no answer, 5xx),
    ``trading_blocked`` (the keys work, the account cannot trade), ``alpaca_error``.
    Raises NotFound, NoCredentials, CredentialsKeyMissing.
    """
    describe(db, caller, config_id)  # NotFound for another user's config
    try:
        credentials = load_alpaca_credentials(db, config_id)
    except BrokerNotAvailable as error:
        if isinstance(error.__cause__, crypto.CipherNotConfigured):
            raise CredentialsKeyMissing() from error
        raise NoCredentials() from error
    mode = "live" if credentials.live else "paper"
    broker = AlpacaBroker(credentials, timeout=5.0, config_id=config_id)
    result: dict[str, Any] = {"ok": False, "live": credentials.live, "account": None}
    try:
        account = broker.check_connection()
    except BrokerAuthFailed as error:
        other = "paper" if credentials.live else "live"
        return {
            **result,
            "code": "invalid_credentials",
            "message": f"Alpaca refused these keys at its {mode} address ({error.message}). Check the key "
            f"id and secret; {other} keys do not work for {mode} trading.",
        }
    except BrokerUnavailable as error:
        return {**result, "code": "alpaca_unavailable", "message": f"Alpaca did not answer: {error.message}"}
    except BrokerError as error:
        return {**result, "code": "alpaca_error", "message": error.message}
    if account["trading_blocked"]:
        return {
            **result,
            "account": account,
            "code": "trading_blocked",
            "message": f"The keys work, but Alpaca blocks trading on account {account['account_number']}.",
        }
    return {
        **result,
        "ok": True,
        "account": account,
        "code": "ok",
        "message": f"Connected to Alpaca {mode} account {account['account_number']} ({account['status']}).",
    }


def load_alpaca_credentials(db: Database, config_id: uuid.UUID) -> AlpacaCredentials:
    """Read and decrypt a config's Alpaca credentials (backend connection, no RLS).

    Raises BrokerNotAvailable with a message a user can act on when there are none or they
    cannot be decrypted (no key configured, or a key that is no longer configured).
    """
    with db.transaction() as conn:
        row = repo.get(conn, config_id)
    if row is None:
        raise BrokerNotAvailable(
            "this config trades through Alpaca and has no Alpaca API keys: set them with "
            f"PUT /api/webhook-configs/{config_id}/alpaca-credentials"
        )
    try:
        key_id = crypto.decrypt(row["key_id_encrypted"])
        secret_key = crypto.decrypt(row["secret_key_encrypted"])
    except crypto.CipherNotConfigured as error:
        raise BrokerNotAvailable(
            "the server has no CREDENTIALS_ENCRYPTION_KEY, so it cannot read this config's Alpaca keys"
        ) from error
    except crypto.UnreadableSecret as error:
        raise BrokerNotAvailable(
            "this config's Alpaca keys were encrypted with a key the server no longer has "
            "(CREDENTIALS_ENCRYPTION_KEY): set the keys again"
        ) from error
    return AlpacaCredentials(key_id=key_id, secret_key=secret_key, live=row["live"], api_url=row["api_url"])


def rotate_encryption_key(db: Database) -> int:
    """Re-encrypt every stored credential under the current (first) key; return how many rows.

    One transaction: all rows or none. Raises CipherNotConfigured, UnreadableSecret (a row
    encrypted with a key no longer configured: nothing is changed).
    """
    with db.transaction() as conn:
        rows = repo.all_for_update(conn)
        for row in rows:
            repo.rewrite(
                conn,
                row["config_id"],
                crypto.rotate(row["key_id_encrypted"]),
                crypto.rotate(row["secret_key_encrypted"]),
            )
    logger.info("re-encrypted %s credential row(s)", len(rows), extra={"action": "credentials_rotated"})
    return len(rows)


def _described(row: dict[str, Any] | None) -> dict[str, Any]:
    if row is None:
        return {"configured": False, "broker": "alpaca", "key_id_hint": None, "live": False}
    return {
        "configured": True,
        "broker": row["broker"],
        "key_id_hint": row["key_id_hint"],
        "live": row["live"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }
