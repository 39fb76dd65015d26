"""The process-wide parts every entry point needs: database pool, job queue, token verifier.

Built once per process (web worker, job worker, CLI) from a ``config.Config``; nothing here is
shared between processes except through Postgres.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import current_app

from viewzenix.auth import LocalSigner, TokenVerifier
from viewzenix.db import Database
from viewzenix.db.pools import SessionTimeouts
from viewzenix.jobs import build_job_app

if TYPE_CHECKING:
    import procrastinate

    from config import Config

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    config: Config
    database_url: str
    db: Database
    jobs: procrastinate.App
    verifier: TokenVerifier
    local_signer: LocalSigner | None
    embedded_server: object | None = None
    # Set once the single-tenant default config has been upserted by this process.
    single_tenant_ready: bool = False

    def close(self) -> None:
        self.db.close()


def resolve_database_url(config: Config) -> tuple[str, object | None]:
    """Return ``(url, embedded_server_or_None)``: DATABASE_URL, else the embedded Postgres."""
    if config.DATABASE_URL:
        return config.DATABASE_URL, None
    from viewzenix.db.embedded import start_embedded

    return start_embedded(config.DATA_DIR)


def session_timeouts(config: Config, process: str) -> SessionTimeouts:
    """Return the database timeouts of a ``process``: ``web`` (requests, CLI) or ``worker`` (and streams)."""
    if process not in ("web", "worker"):
        raise ValueError(f"process must be web or worker, got {process!r}")
    prefix = "WEB" if process == "web" else "WORKER"
    return SessionTimeouts(
        statement_ms=getattr(config, f"{prefix}_DB_STATEMENT_TIMEOUT_MS"),
        lock_ms=getattr(config, f"{prefix}_DB_LOCK_TIMEOUT_MS"),
        idle_in_transaction_ms=config.DB_IDLE_IN_TRANSACTION_TIMEOUT_MS,
    )


def build_runtime(config: Config, process: str = "web") -> Runtime:
    """Open the pool (lazily connecting), build the job app and the token verifier.

    ``process``: ``web`` or ``worker`` (the worker and streams processes): which database
    timeouts its connections get (``session_timeouts``).
    """
    url, server = resolve_database_url(config)
    timeouts = session_timeouts(config, process)
    configure_cipher(config)
    from viewzenix.brokers.alpaca import RequestBudget

    RequestBudget.default_limit = config.ALPACA_REQUESTS_PER_MINUTE
    db = Database(
        url,
        min_size=config.DB_POOL_MIN_SIZE,
        max_size=config.DB_POOL_MAX_SIZE,
        timeout=config.DB_POOL_TIMEOUT_SECONDS,
        timeouts=timeouts,
        reprobe_seconds=config.DB_OUTAGE_REPROBE_SECONDS,
    )
    db.open(wait=False)
    if config.SUPABASE_URL:
        signer = None
        verifier = TokenVerifier.for_supabase(config.SUPABASE_URL, config.SUPABASE_JWT_SECRET)
    else:
        signer = LocalSigner.load_or_create(config.DATA_DIR / "local_jwt_key.pem")
        verifier = signer.verifier()
    return Runtime(
        config=config,
        database_url=url,
        db=db,
        jobs=build_job_app(url, timeouts),
        verifier=verifier,
        local_signer=signer,
        embedded_server=server,
    )


def configure_cipher(config: Config) -> None:
    """Set the process-wide cipher of ``viewzenix.crypto`` from CREDENTIALS_ENCRYPTION_KEY.

    Unset: outside production a key kept in ``DATA_DIR/credentials.key``; in production none
    (broker credentials can then be neither stored nor read, and the log says so).
    """
    from viewzenix import crypto

    setting = config.CREDENTIALS_ENCRYPTION_KEY
    if not setting and config.ENV != "production":
        setting = crypto.load_or_create_key(config.DATA_DIR / "credentials.key")
    if not setting:
        logger.warning(
            "CREDENTIALS_ENCRYPTION_KEY is not set: Alpaca keys and notification URLs cannot be used",
            extra={"action": "credentials_key_missing"},
        )
        crypto.configure(None)
        return
    crypto.configure(crypto.cipher_from_setting(setting))


def get_runtime() -> Runtime:
    """Return the current Flask app's runtime (inside an app or request context)."""
    return current_app.extensions["viewzenix"]
