"""Configuration classes over the environment.

Nothing here runs at import time: ``load_config()`` reads ``os.environ`` when the app factory
calls it. Every variable is documented in ``.env.example``. Production (``VIEWZENIX_ENV=production``)
refuses to start without its secrets and names the missing one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(RuntimeError):
    """The configuration is incomplete or invalid; the message names the variable."""


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _decimal(env: Mapping[str, str], name: str, default: str) -> Decimal:
    raw = env.get(name) or default
    try:
        return Decimal(raw)
    except InvalidOperation:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None


MAX_DEFAULT_WORKER_PROCESSES = 4  # WORKER_PROCESSES' default at most (connections: see Config)


def available_cpus() -> int:
    """Return how many CPUs this process may use, at least 1: ``loky.cpu_count()``.

    The least of the machine's CPUs, this process's affinity mask, a Linux cgroup CPU quota and
    ``LOKY_MAX_CPU_COUNT`` when set (loky's documented cap). The quota is read at the root of the
    cgroup mount (v2 ``/sys/fs/cgroup/cpu.max``, else v1 ``cpu/cpu.cfs_quota_us`` over
    ``cpu.cfs_period_us``) and rounded up: what ``docker run --cpus=N`` and Kubernetes CPU limits
    set for the container, which neither ``os.cpu_count()`` nor the affinity mask shows; a quota on
    a parent cgroup (a systemd slice's ``CPUQuota=``) is not seen. Sizes the default worker
    processes (``WORKER_PROCESSES``) and gunicorn's workers (``gunicorn.conf.py``). Raises
    ConfigError when ``LOKY_MAX_CPU_COUNT`` is not a whole number.
    """
    from loky import cpu_count  # imported here (0.1-0.2 s): only a process sizing a default pays

    try:
        return max(1, cpu_count())
    except ValueError:  # loky reads int(LOKY_MAX_CPU_COUNT)
        raise ConfigError(
            f"LOKY_MAX_CPU_COUNT must be a whole number, got {os.environ.get('LOKY_MAX_CPU_COUNT')!r}"
        ) from None


def gunicorn_workers(env: Mapping[str, str]) -> int:
    """gunicorn's worker count for ``env``: ``WEB_CONCURRENCY``, else gunicorn's advice of 2 ×
    cores + 1 on the CPUs this process may use (``available_cpus``: a container's quota counts).
    Read by ``gunicorn.conf.py`` and by the benchmarks that start gunicorn."""
    return int(env.get("WEB_CONCURRENCY") or available_cpus() * 2 + 1)


def parse_host_ports(raw: str | None) -> frozenset[str]:
    """Parse a comma-separated ``host:port`` list (``NOTIFY_ALLOW_PRIVATE_HOSTS``)."""
    return frozenset(part.strip() for part in (raw or "").split(",") if part.strip())


class Config:
    """Settings shared by every environment, read from ``env`` (default ``os.environ``)."""

    ENV = "development"
    TESTING = False
    REQUIRED: tuple[str, ...] = ()

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        missing = [name for name in self.REQUIRED if not env.get(name)]
        if missing:
            raise ConfigError(
                f"{', '.join(missing)} must be set when VIEWZENIX_ENV={self.ENV} (see .env.example)"
            )
        self.SECRET_KEY = env.get("SECRET_KEY") or "dev-only-not-secret"
        self.DATA_DIR = Path(env.get("DATA_DIR") or PROJECT_ROOT / ".data")
        # Postgres: DATABASE_URL, or the embedded server under DATA_DIR/pg when unset.
        self.DATABASE_URL = env.get("DATABASE_URL") or None
        # Web processes (gunicorn, and the flask CLI) use WEB_DATABASE_URL when set: it may be a
        # transaction-mode pooler (Supabase port 6543, PgBouncer pool_mode=transaction), so that
        # pool runs without prepared statements and nothing session-scoped runs on it. Workers,
        # streams and migrations always use DATABASE_URL, which must keep a session (LISTEN,
        # session advisory locks). Unset: web uses DATABASE_URL too. Sizes: docs/deploy-supabase.md.
        self.WEB_DATABASE_URL = env.get("WEB_DATABASE_URL") or None
        # The application pool of each process (each gunicorn worker, the job worker, streams).
        self.DB_POOL_MIN_SIZE = _int(env, "DB_POOL_MIN_SIZE", 1)
        self.DB_POOL_MAX_SIZE = _int(env, "DB_POOL_MAX_SIZE", 10)
        # The job queue's own pool (procrastinate) in the job worker and in each runner call: its
        # fetches, heartbeats and LISTEN connection (psycopg_pool's default size, 4).
        self.JOB_POOL_SIZE = _int(env, "JOB_POOL_SIZE", 4)
        for name in ("DB_POOL_MAX_SIZE", "JOB_POOL_SIZE"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.DB_POOL_MIN_SIZE <= self.DB_POOL_MAX_SIZE:
            raise ConfigError(
                f"DB_POOL_MIN_SIZE must be between 0 and DB_POOL_MAX_SIZE ({self.DB_POOL_MAX_SIZE}), "
                f"got {self.DB_POOL_MIN_SIZE}"
            )
        # Seconds a request waits for a database connection before answering 503
        # database_unavailable (TradingView cancels a request after 3 s; resends a 5xx).
        self.DB_POOL_TIMEOUT_SECONDS = float(env.get("DB_POOL_TIMEOUT_SECONDS") or 0.8)
        # Once a connection could not be had (the database is down), requests answer 503 at once for
        # this long (seconds) instead of each waiting DB_POOL_TIMEOUT_SECONDS; then one request
        # tries again. 0 = every request waits the pool timeout.
        self.DB_OUTAGE_REPROBE_SECONDS = float(env.get("DB_OUTAGE_REPROBE_SECONDS") or 0.5)
        if self.DB_OUTAGE_REPROBE_SECONDS < 0:
            raise ConfigError(
                f"DB_OUTAGE_REPROBE_SECONDS must be 0 or more, got {self.DB_OUTAGE_REPROBE_SECONDS}"
            )
        # Postgres timeouts of every connection, in milliseconds (0 = none); docs/database-timeouts.md.
        # Web (requests, CLI): a statement's run time and a lock wait, so a request blocked on a
        # row lock answers 503 database_busy instead of hanging (TradingView gives up after 3 s).
        self.WEB_DB_STATEMENT_TIMEOUT_MS = _int(env, "WEB_DB_STATEMENT_TIMEOUT_MS", 5000)
        self.WEB_DB_LOCK_TIMEOUT_MS = _int(env, "WEB_DB_LOCK_TIMEOUT_MS", 1000)
        # Worker and streams: a job blocked on a row lock fails (and is retried with backoff)
        # instead of heartbeating forever while it holds its (config, symbol) lock.
        self.WORKER_DB_STATEMENT_TIMEOUT_MS = _int(env, "WORKER_DB_STATEMENT_TIMEOUT_MS", 60000)
        self.WORKER_DB_LOCK_TIMEOUT_MS = _int(env, "WORKER_DB_LOCK_TIMEOUT_MS", 10000)
        # Every process: a transaction left open with nothing running is ended by Postgres (which
        # closes that connection), releasing its locks.
        self.DB_IDLE_IN_TRANSACTION_TIMEOUT_MS = _int(env, "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", 60000)
        for name in (
            "WEB_DB_STATEMENT_TIMEOUT_MS",
            "WEB_DB_LOCK_TIMEOUT_MS",
            "WORKER_DB_STATEMENT_TIMEOUT_MS",
            "WORKER_DB_LOCK_TIMEOUT_MS",
            "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be 0 (none) or a positive number of milliseconds")
        # Public base address used to build webhook URLs shown to users.
        self.PUBLIC_BASE_URL = (env.get("PUBLIC_BASE_URL") or "http://localhost:8000").rstrip("/")
        # Single-tenant /webhook (the seed's mode); disabled when unset.
        self.WEBHOOK_PASSPHRASE = env.get("WEBHOOK_PASSPHRASE") or None
        self.SIMULATION_MODE = _bool(env, "SIMULATION_MODE", True)
        self.DEFAULT_ORDER_QUANTITY = _decimal(env, "DEFAULT_ORDER_QUANTITY", "1")
        self.POSITION_SIZING_METHOD = (env.get("POSITION_SIZING_METHOD") or "fixed").strip().lower()
        self.POSITION_SIZE_VALUE = _decimal(env, "POSITION_SIZE_VALUE", "0")
        # The single-tenant default config is built from these three at the first alert: a bad
        # value stops the process here, naming the variable, instead of failing every alert.
        from viewzenix.services.single_tenant import default_settings

        try:
            default_settings(self)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        # Alpaca account of the single-tenant default config (used when SIMULATION_MODE is false).
        self.ALPACA_API_KEY = env.get("ALPACA_API_KEY") or None
        self.ALPACA_API_SECRET = env.get("ALPACA_API_SECRET") or None
        self.ALPACA_API_URL = env.get("ALPACA_API_URL") or "https://paper-api.alpaca.markets"
        # Fernet key(s) encrypting secrets at rest (Alpaca keys, notification URLs), comma-separated,
        # the current one first (viewzenix/crypto.py). Required in production; unset outside it:
        # a key kept in DATA_DIR/credentials.key.
        self.CREDENTIALS_ENCRYPTION_KEY = (env.get("CREDENTIALS_ENCRYPTION_KEY") or "").strip() or None
        if self.CREDENTIALS_ENCRYPTION_KEY:
            from viewzenix.crypto import cipher_from_setting

            try:
                cipher_from_setting(self.CREDENTIALS_ENCRYPTION_KEY)
            except ValueError as error:
                raise ConfigError(str(error)) from error
        # Requests per rolling minute per Alpaca account, per process (Alpaca allows 200).
        self.ALPACA_REQUESTS_PER_MINUTE = _int(env, "ALPACA_REQUESTS_PER_MINUTE", 200)
        # How often the worker brings open Alpaca orders in step with Alpaca (cron with seconds;
        # "" = never). The fallback of the trade_updates stream, and the catch-up after a restart.
        self.ORDER_SYNC_CRON = env.get("ORDER_SYNC_CRON", "* * * * * */30").strip()
        # A job whose worker sent no heartbeat for this long (seconds) is retried (a killed worker);
        # the check runs on STALLED_JOBS_CRON (cron with a sixth, trailing seconds field).
        self.STALLED_JOB_SECONDS = _int(env, "STALLED_JOB_SECONDS", 30)
        self.STALLED_JOBS_CRON = env.get("STALLED_JOBS_CRON") or "* * * * * */15"
        # SIGTERM/SIGINT to a worker: running jobs get this long (seconds) to finish, then are handed
        # back to the queue and the worker exits. Heartbeats stop during the wait, so it must stay
        # at most half of STALLED_JOB_SECONDS (default 15 s, or that half when smaller).
        self.WORKER_SHUTDOWN_TIMEOUT_SECONDS = _int(
            env, "WORKER_SHUTDOWN_TIMEOUT_SECONDS", max(1, min(15, self.STALLED_JOB_SECONDS // 2))
        )
        if not 1 <= self.WORKER_SHUTDOWN_TIMEOUT_SECONDS <= self.STALLED_JOB_SECONDS / 2:
            raise ConfigError(
                "WORKER_SHUTDOWN_TIMEOUT_SECONDS must be between 1 and half of STALLED_JOB_SECONDS "
                f"({self.STALLED_JOB_SECONDS}), got {self.WORKER_SHUTDOWN_TIMEOUT_SECONDS}"
            )
        # `make run` (viewzenix.supervisor) starts this many worker processes, each running
        # WORKER_CONCURRENCY jobs at once. Default: one per CPU this process may use, at most
        # MAX_DEFAULT_WORKER_PROCESSES: a paper job is CPU work and one process runs its Python on
        # one core at a time (docs/scaling.md, ninth pass), and each worker process holds 5-9
        # Postgres connections (the embedded server allows 100). A platform running the Procfile
        # scales its `worker` process type instead. Checked in every process, like the rest.
        # The CPUs are counted only for the default (loky's import is not free).
        self.WORKER_PROCESSES = (
            _int(env, "WORKER_PROCESSES", 0)
            if env.get("WORKER_PROCESSES")
            else min(available_cpus(), MAX_DEFAULT_WORKER_PROCESSES)
        )
        if self.WORKER_PROCESSES < 1:
            raise ConfigError(f"WORKER_PROCESSES must be at least 1, got {self.WORKER_PROCESSES}")
        # Succeeded and cancelled jobs (with their events and attempt records) are deleted this
        # many days after they ended, hourly; failed and aborted ones move to the archive then.
        self.JOB_RETENTION_DAYS = _int(env, "JOB_RETENTION_DAYS", 14)
        if self.JOB_RETENTION_DAYS < 1:
            raise ConfigError(f"JOB_RETENTION_DAYS must be at least 1, got {self.JOB_RETENTION_DAYS}")
        # Days archived failed jobs (private.job_archive, GET /api/admin/jobs/archive) are kept.
        self.JOB_ARCHIVE_RETENTION_DAYS = _int(env, "JOB_ARCHIVE_RETENTION_DAYS", 365)
        if self.JOB_ARCHIVE_RETENTION_DAYS < self.JOB_RETENTION_DAYS:
            raise ConfigError(
                "JOB_ARCHIVE_RETENTION_DAYS must be at least JOB_RETENTION_DAYS "
                f"({self.JOB_RETENTION_DAYS}), got {self.JOB_ARCHIVE_RETENTION_DAYS}"
            )
        # When the worker expires resting paper day orders after the US equity close (16:00 New
        # York; cron, UTC; "" = only when a later price arrives). Each run expires what is due.
        self.DAY_ORDER_EXPIRY_CRON = env.get("DAY_ORDER_EXPIRY_CRON", "*/5 * * * *").strip()
        # Reconciliation of our books with each broker's, by the worker (cron syntax, UTC; "" = off).
        # It reports drift; repairing is an operator's decision (flask reconcile --repair).
        self.RECONCILE_CRON = env.get("RECONCILE_CRON", "*/15 * * * *").strip()
        # Shared secret of POST /api/jobs/run (the cron-driven runner; see supabase/job_runner_cron.sql),
        # sent as "Authorization: Bearer <secret>". Unset: the endpoint answers 404 job_runner_disabled.
        self.JOB_QUEUE_RUNNER_SECRET = env.get("JOB_QUEUE_RUNNER_SECRET") or None
        # Rotation: the next secret, accepted as well as the current one. Set it, move the cron
        # caller to it, then make it the current secret and unset this: no call is refused.
        self.JOB_QUEUE_RUNNER_SECRET_NEXT = env.get("JOB_QUEUE_RUNNER_SECRET_NEXT") or None
        for name in ("JOB_QUEUE_RUNNER_SECRET", "JOB_QUEUE_RUNNER_SECRET_NEXT"):
            value = getattr(self, name)
            if value is not None and len(value) < 32:
                raise ConfigError(
                    f"{name} must be at least 32 characters (e.g. `openssl rand -hex 32`), got {len(value)}"
                )
        if self.JOB_QUEUE_RUNNER_SECRET_NEXT and not self.JOB_QUEUE_RUNNER_SECRET:
            raise ConfigError("JOB_QUEUE_RUNNER_SECRET_NEXT is set without JOB_QUEUE_RUNNER_SECRET")
        # Supabase Auth. Without SUPABASE_URL the app runs in local mode and signs its own tokens.
        self.SUPABASE_URL = (env.get("SUPABASE_URL") or "").rstrip("/") or None
        self.SUPABASE_KEY = env.get("SUPABASE_KEY") or None  # the public anon key (the dashboard)
        # The service-role key: server side only (the drift check's Auth admin API); never a page.
        self.SUPABASE_SERVICE_ROLE_KEY = env.get("SUPABASE_SERVICE_ROLE_KEY") or None
        self.SUPABASE_JWT_SECRET = env.get("SUPABASE_JWT_SECRET") or None
        # Supabase Database Webhooks (POST /hooks/supabase/db). WEBHOOK_SECRET: the seed's
        # x-hmac-sha256 scheme. STANDARD_WEBHOOK_SECRETS: Standard Webhooks whsec_ secrets,
        # space- or comma-separated (new first, old kept during a rotation).
        # SUPABASE_HOOK_SCHEMES: which are accepted (hmac, standard); default: those with a secret.
        self.WEBHOOK_SECRET = env.get("WEBHOOK_SECRET") or None
        self.STANDARD_WEBHOOK_SECRETS = tuple(
            s for s in (env.get("STANDARD_WEBHOOK_SECRETS") or "").replace(",", " ").split() if s
        )
        for secret in self.STANDARD_WEBHOOK_SECRETS:
            if not secret.removeprefix("whsec_"):
                raise ConfigError(
                    "STANDARD_WEBHOOK_SECRETS holds an empty secret (a bare whsec_): "
                    "paste the whole secret from Supabase's webhook settings"
                )
        schemes = (env.get("SUPABASE_HOOK_SCHEMES") or "").replace(",", " ").lower().split()
        if not schemes:
            schemes = [
                name
                for name, secret in (
                    ("hmac", self.WEBHOOK_SECRET),
                    ("standard", self.STANDARD_WEBHOOK_SECRETS),
                )
                if secret
            ]
        for name in schemes:
            if name not in ("hmac", "standard"):
                raise ConfigError(f"SUPABASE_HOOK_SCHEMES holds {name!r}; use hmac and/or standard")
        if "hmac" in schemes and not self.WEBHOOK_SECRET:
            raise ConfigError("SUPABASE_HOOK_SCHEMES includes hmac: set WEBHOOK_SECRET")
        if "standard" in schemes and not self.STANDARD_WEBHOOK_SECRETS:
            raise ConfigError("SUPABASE_HOOK_SCHEMES includes standard: set STANDARD_WEBHOOK_SECRETS")
        self.SUPABASE_HOOK_SCHEMES = tuple(schemes)
        # What a deleted auth user becomes: anonymise (profile kept without email, name, avatar,
        # username; webhook configs turned off; trading history kept) or delete (profile and
        # everything it owns).
        self.SUPABASE_USERS_ON_DELETE = (env.get("SUPABASE_USERS_ON_DELETE") or "anonymise").strip().lower()
        if self.SUPABASE_USERS_ON_DELETE not in ("anonymise", "delete"):
            raise ConfigError(
                f"SUPABASE_USERS_ON_DELETE must be anonymise or delete, got {self.SUPABASE_USERS_ON_DELETE!r}"
            )
        # Drift check (flask sync check): the source database when it is not this one (the app's
        # Supabase project A); SYNC_USERS_SOURCE: auto (SYNC_SOURCE_DATABASE_URL if set, else this
        # database), same, database, or auth-api (Supabase Auth admin API at SUPABASE_URL with
        # SUPABASE_SERVICE_ROLE_KEY).
        self.SYNC_SOURCE_DATABASE_URL = env.get("SYNC_SOURCE_DATABASE_URL") or None
        self.SYNC_USERS_SOURCE = (env.get("SYNC_USERS_SOURCE") or "auto").strip().lower()
        if self.SYNC_USERS_SOURCE not in ("auto", "same", "database", "auth-api"):
            raise ConfigError(
                f"SYNC_USERS_SOURCE must be auto, same, database or auth-api, got {self.SYNC_USERS_SOURCE!r}"
            )
        # The worker's periodic drift check of watchers and users (cron, UTC; "" = never), and
        # whether it repairs what it finds (default: yes — missing and differing rows, and
        # removals unless they would remove more than half of the target's rows).
        self.SYNC_CHECK_CRON = env.get("SYNC_CHECK_CRON", "23 * * * *").strip()
        self.SYNC_CHECK_REPAIR = _bool(env, "SYNC_CHECK_REPAIR", True)
        # Days an alert refused at intake (status rejected, with a reject_code) is kept; the hourly
        # purge job deletes older ones. Every other signal is kept, a broker-rejected one included.
        self.REFUSED_SIGNAL_RETENTION_DAYS = _int(env, "REFUSED_SIGNAL_RETENTION_DAYS", 30)
        if self.REFUSED_SIGNAL_RETENTION_DAYS < 1:
            raise ConfigError(
                f"REFUSED_SIGNAL_RETENTION_DAYS must be at least 1, got {self.REFUSED_SIGNAL_RETENTION_DAYS}"
            )
        # The Supabase receiver's transaction is cancelled past this many milliseconds
        # (SET LOCAL statement_timeout) and answered 503 with Retry-After; 0 = no bound.
        self.HOOK_STATEMENT_TIMEOUT_MS = _int(env, "HOOK_STATEMENT_TIMEOUT_MS", 1000)
        if self.HOOK_STATEMENT_TIMEOUT_MS < 0:
            raise ConfigError(
                f"HOOK_STATEMENT_TIMEOUT_MS must be 0 or more, got {self.HOOK_STATEMENT_TIMEOUT_MS}"
            )
        # Days the receiver's event log (private.hook_events) is kept.
        self.HOOK_EVENTS_RETENTION_DAYS = _int(env, "HOOK_EVENTS_RETENTION_DAYS", 14)
        # Rate limits of TradingView intake per source address, per web process (the
        # "limits" syntax, e.g. "20/minute"; "" = off; viewzenix/webhooks/limits.py): webhook hits answered
        # 404/401 (unknown config, wrong token or passphrase; TradingView's own addresses exempt),
        # and every hit of the single-tenant POST /webhook.
        self.WEBHOOK_FAILED_AUTH_LIMIT = env.get("WEBHOOK_FAILED_AUTH_LIMIT", "20/minute").strip()
        self.SINGLE_TENANT_WEBHOOK_LIMIT = env.get("SINGLE_TENANT_WEBHOOK_LIMIT", "600/minute").strip()
        # Refuse webhook hits from any address but TradingView's four (docs/tradingview.md): 403
        # source_not_allowed. Needs the real client address (TRUSTED_PROXY_COUNT behind a proxy).
        self.TRADINGVIEW_SOURCES_ONLY = _bool(env, "TRADINGVIEW_SOURCES_ONLY", False)
        # Number of proxies in front of the app whose X-Forwarded-For is trusted (0 = none).
        self.TRUSTED_PROXY_COUNT = _int(env, "TRUSTED_PROXY_COUNT", 0)
        # How long the first response to an Idempotency-Key is kept and replayed.
        self.IDEMPOTENCY_KEY_TTL_HOURS = _int(env, "IDEMPOTENCY_KEY_TTL_HOURS", 24)
        if self.IDEMPOTENCY_KEY_TTL_HOURS < 1:
            raise ConfigError(
                f"IDEMPOTENCY_KEY_TTL_HOURS must be at least 1, got {self.IDEMPOTENCY_KEY_TTL_HOURS}"
            )
        # TEST/DEV ONLY: host:port pairs (comma-separated) that notification destinations may
        # target although they are loopback/private (local fakes). Empty in production.
        self.NOTIFY_ALLOW_PRIVATE_HOSTS = parse_host_ports(env.get("NOTIFY_ALLOW_PRIVATE_HOSTS"))
        # GET /metrics: with METRICS_TOKEN, only for "Authorization: Bearer <token>"; without it,
        # only for requests from a loopback address (a sidecar or a tunnel). METRICS_ENABLED=false: 404.
        self.METRICS_ENABLED = _bool(env, "METRICS_ENABLED", True)
        # The worker's own Prometheus metrics (broker call latency and errors) on this loopback
        # port; unset: not served.
        self.WORKER_METRICS_PORT = _int(env, "WORKER_METRICS_PORT", 0) or None
        # One log line per request (viewzenix/access_log.py): api (all but the alert webhooks),
        # all, or off.
        self.ACCESS_LOG = (env.get("ACCESS_LOG") or "api").strip().lower()
        if self.ACCESS_LOG not in ("api", "all", "off"):
            raise ConfigError(f"ACCESS_LOG must be api, all or off, got {self.ACCESS_LOG!r}")
        self.METRICS_TOKEN = env.get("METRICS_TOKEN") or None
        # GET /readyz: not ready when the oldest due job waited longer than this (seconds), or
        # no worker sent a heartbeat for READY_WORKER_HEARTBEAT_SECONDS.
        self.READY_MAX_QUEUE_AGE_SECONDS = _int(env, "READY_MAX_QUEUE_AGE_SECONDS", 60)
        self.READY_WORKER_HEARTBEAT_SECONDS = _int(env, "READY_WORKER_HEARTBEAT_SECONDS", 60)
        self.LOG_LEVEL = (env.get("LOG_LEVEL") or "INFO").upper()
        self.LOG_FORMAT = (env.get("LOG_FORMAT") or "text").lower()
        # flask-smorest / OpenAPI
        self.API_TITLE = "Viewzenix"
        self.API_VERSION = "v1"
        self.OPENAPI_VERSION = "3.0.3"
        self.OPENAPI_URL_PREFIX = "/api"
        self.OPENAPI_JSON_PATH = "openapi.json"
        # Docs page at /api/docs: Swagger UI, its assets served by this app (PyPI flask-swagger-ui),
        # so the page works offline.
        self.OPENAPI_SWAGGER_UI_PATH = "docs"
        self.OPENAPI_SWAGGER_UI_URL = "/api/docs/static/"
        self.API_SPEC_OPTIONS = {
            "components": {
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                    # POST /api/jobs/run (viewzenix.api.job_runner): the shared runner secret.
                    "jobRunnerSecret": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "JOB_QUEUE_RUNNER_SECRET",
                    },
                }
            },
            "security": [{"bearerAuth": []}],
        }
        self.JSON_SORT_KEYS = False


class DevelopmentConfig(Config):
    ENV = "development"


class TestingConfig(Config):
    ENV = "testing"
    TESTING = True


class ProductionConfig(Config):
    """Production: no default secrets; the database and Supabase Auth must be configured."""

    ENV = "production"
    REQUIRED = ("SECRET_KEY", "DATABASE_URL", "SUPABASE_URL", "CREDENTIALS_ENCRYPTION_KEY")


_CONFIGS: dict[str, type[Config]] = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def load_config(env: Mapping[str, str] | None = None) -> Config:
    """Build the config for ``VIEWZENIX_ENV`` (development, testing, production).

    Raises ConfigError naming the variable that is missing or invalid.
    """
    if env is None:
        from dotenv import load_dotenv

        load_dotenv(PROJECT_ROOT / ".env", override=False)
        env = os.environ
    name = (env.get("VIEWZENIX_ENV") or "development").strip().lower()
    try:
        cls = _CONFIGS[name]
    except KeyError:
        raise ConfigError(f"VIEWZENIX_ENV must be one of {', '.join(_CONFIGS)}, got {name!r}") from None
    return cls(env)
