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
    from viewzenix.services.accounts import Accounts

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    config: Config
    database_url: str
    db: Database
    jobs: procrastinate.App
    verifier: TokenVerifier
    local_signer: LocalSigner | None
    # The one seam between brokers and our books (services.accounts), built once per process.
    accounts: Accounts
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


WEB = "web"
SESSION = "session"


def session_timeouts(config: Config, role: str) -> SessionTimeouts:
    """Return the database timeouts of a process ``role``: ``web`` (requests, CLI) or ``session``
    (job worker and streams), from the ``WEB_DB_*`` / ``WORKER_DB_*`` settings (milliseconds)."""
    if role not in (WEB, SESSION):
        raise ValueError(f"role must be {WEB!r} or {SESSION!r}, got {role!r}")
    prefix = "WEB" if role == WEB else "WORKER"
    return SessionTimeouts(
        statement_ms=getattr(config, f"{prefix}_DB_STATEMENT_TIMEOUT_MS"),
        lock_ms=getattr(config, f"{prefix}_DB_LOCK_TIMEOUT_MS"),
        idle_in_transaction_ms=config.DB_IDLE_IN_TRANSACTION_TIMEOUT_MS,
    )


def build_runtime(config: Config, role: str = SESSION) -> Runtime:
    """Open the pool (lazily connecting), build the job app and the token verifier.

    ``role``: ``"web"`` (gunicorn and the flask CLI) puts the pool and the job app on
    ``WEB_DATABASE_URL`` when it is set, as on a transaction-mode pooler (no prepared statements,
    a one-connection job-queue app), with the web database timeouts; ``"session"`` (job worker,
    streams) uses ``DATABASE_URL`` with the worker timeouts (``session_timeouts``).
    ``Runtime.database_url`` is ``DATABASE_URL`` (or the embedded server) in both roles: what
    migrations and the cron-driven runner's worker connect to, since they need a session.
    Raises ``ValueError`` for another role.
    """
    url, server = resolve_database_url(config)
    timeouts = session_timeouts(config, role)
    configure_cipher(config)
    from viewzenix.brokers.alpaca import RequestBudget

    RequestBudget.default_limit = config.ALPACA_REQUESTS_PER_MINUTE
    pooled = role == WEB and bool(config.WEB_DATABASE_URL)
    pool_url = config.WEB_DATABASE_URL if pooled else url
    db = Database(
        pool_url,
        min_size=config.DB_POOL_MIN_SIZE,
        max_size=config.DB_POOL_MAX_SIZE,
        timeout=config.DB_POOL_TIMEOUT_SECONDS,
        transaction_pooler=pooled,
        timeouts=timeouts,
        reprobe_seconds=config.DB_OUTAGE_REPROBE_SECONDS,
    )
    db.open(wait=False)
    if role == WEB:
        # Web code defers and administers jobs on the request's own connection (``connection=``),
        # so this app's pool is never opened in a web process; it is marked for the pooler anyway.
        jobs = build_job_app(pool_url, transaction_pooler=True, pool_size=1)
    else:
        jobs = build_job_app(url, timeouts, pool_size=config.JOB_POOL_SIZE)
    if config.SUPABASE_URL:
        signer = None
        verifier = TokenVerifier.for_supabase(config.SUPABASE_URL, config.SUPABASE_JWT_SECRET)
    else:
        signer = LocalSigner.load_or_create(config.DATA_DIR / "local_jwt_key.pem")
        verifier = signer.verifier()
    from viewzenix.services.accounts import Accounts

    return Runtime(
        config=config,
        accounts=Accounts(db),
        database_url=url,
        db=db,
        jobs=jobs,
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
