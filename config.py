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
        self.DB_POOL_MIN_SIZE = _int(env, "DB_POOL_MIN_SIZE", 1)
        self.DB_POOL_MAX_SIZE = _int(env, "DB_POOL_MAX_SIZE", 10)
        # Public base address used to build webhook URLs shown to users.
        self.PUBLIC_BASE_URL = (env.get("PUBLIC_BASE_URL") or "http://localhost:8000").rstrip("/")
        # Single-tenant /webhook (the seed's mode); disabled when unset.
        self.WEBHOOK_PASSPHRASE = env.get("WEBHOOK_PASSPHRASE") or None
        self.SIMULATION_MODE = _bool(env, "SIMULATION_MODE", True)
        self.DEFAULT_ORDER_QUANTITY = _decimal(env, "DEFAULT_ORDER_QUANTITY", "1")
        self.POSITION_SIZING_METHOD = (env.get("POSITION_SIZING_METHOD") or "fixed").strip().lower()
        self.POSITION_SIZE_VALUE = _decimal(env, "POSITION_SIZE_VALUE", "0")
        # Alpaca (adapter arrives with its own issue; keys are read here already).
        self.ALPACA_API_KEY = env.get("ALPACA_API_KEY") or None
        self.ALPACA_API_SECRET = env.get("ALPACA_API_SECRET") or None
        self.ALPACA_API_URL = env.get("ALPACA_API_URL") or "https://paper-api.alpaca.markets"
        # A job whose worker sent no heartbeat for this long (seconds) is retried (a killed worker);
        # the check runs on STALLED_JOBS_CRON (cron with a leading seconds field).
        self.STALLED_JOB_SECONDS = _int(env, "STALLED_JOB_SECONDS", 30)
        self.STALLED_JOBS_CRON = env.get("STALLED_JOBS_CRON") or "*/15 * * * * *"
        # Reconciliation of our books with each broker's, by the worker (cron syntax, UTC; "" = off).
        # It reports drift; repairing is an operator's decision (flask reconcile --repair).
        self.RECONCILE_CRON = env.get("RECONCILE_CRON", "*/15 * * * *").strip()
        # Supabase Auth. Without SUPABASE_URL the app runs in local mode and signs its own tokens.
        self.SUPABASE_URL = (env.get("SUPABASE_URL") or "").rstrip("/") or None
        self.SUPABASE_KEY = env.get("SUPABASE_KEY") or None
        self.SUPABASE_JWT_SECRET = env.get("SUPABASE_JWT_SECRET") or None
        # Number of proxies in front of the app whose X-Forwarded-For is trusted (0 = none).
        self.TRUSTED_PROXY_COUNT = _int(env, "TRUSTED_PROXY_COUNT", 0)
        # How long the first response to an Idempotency-Key is kept and replayed.
        self.IDEMPOTENCY_KEY_TTL_HOURS = _int(env, "IDEMPOTENCY_KEY_TTL_HOURS", 24)
        if self.IDEMPOTENCY_KEY_TTL_HOURS < 1:
            raise ConfigError(
                f"IDEMPOTENCY_KEY_TTL_HOURS must be at least 1, got {self.IDEMPOTENCY_KEY_TTL_HOURS}"
            )
        # Fernet key(s) encrypting secrets at rest (notification URLs), comma-separated, first
        # encrypts (rotation). Unset outside production: a key kept in DATA_DIR/credentials.key.
        self.CREDENTIALS_ENCRYPTION_KEY = env.get("CREDENTIALS_ENCRYPTION_KEY") or None
        # TEST/DEV ONLY: host:port pairs (comma-separated) that notification destinations may
        # target although they are loopback/private (local fakes). Empty in production.
        self.NOTIFY_ALLOW_PRIVATE_HOSTS = parse_host_ports(env.get("NOTIFY_ALLOW_PRIVATE_HOSTS"))
        # GET /metrics: with METRICS_TOKEN, only for "Authorization: Bearer <token>"; without it,
        # only for requests from a loopback address (a sidecar or a tunnel). METRICS_ENABLED=false: 404.
        self.METRICS_ENABLED = _bool(env, "METRICS_ENABLED", True)
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
        # Docs page at /api/docs: Swagger UI, whose assets the browser loads from jsDelivr.
        self.OPENAPI_SWAGGER_UI_PATH = "docs"
        self.OPENAPI_SWAGGER_UI_URL = "https://cdn.jsdelivr.net/npm/swagger-ui-dist/"
        self.API_SPEC_OPTIONS = {
            "components": {
                "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
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
