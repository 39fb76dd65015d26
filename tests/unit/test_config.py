"""Configuration: environment names, production's required secrets."""

from __future__ import annotations

import pytest

from config import ConfigError, DevelopmentConfig, ProductionConfig, load_config


def test_development_runs_without_any_variable():
    config = load_config({})
    assert isinstance(config, DevelopmentConfig)
    assert config.DATABASE_URL is None  # → embedded Postgres
    assert config.SIMULATION_MODE is True
    assert config.IDEMPOTENCY_KEY_TTL_HOURS == 24


def test_production_refuses_to_start_naming_each_missing_secret():
    with pytest.raises(
        ConfigError, match="SECRET_KEY, DATABASE_URL, SUPABASE_URL, CREDENTIALS_ENCRYPTION_KEY must be set"
    ):
        load_config({"VIEWZENIX_ENV": "production"})
    with pytest.raises(ConfigError, match=r"^SUPABASE_URL, CREDENTIALS_ENCRYPTION_KEY must be set"):
        load_config({"VIEWZENIX_ENV": "production", "SECRET_KEY": "s", "DATABASE_URL": "postgresql://x"})


def test_production_starts_with_its_secrets():
    config = load_config(
        {
            "VIEWZENIX_ENV": "production",
            "SECRET_KEY": "s",
            "DATABASE_URL": "postgresql://x",
            "SUPABASE_URL": "https://abcd.supabase.co/",
            "CREDENTIALS_ENCRYPTION_KEY": "x" * 43 + "=",
        }
    )
    assert isinstance(config, ProductionConfig)
    assert config.SUPABASE_URL == "https://abcd.supabase.co"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"VIEWZENIX_ENV": "staging"}, "VIEWZENIX_ENV must be one of"),
        ({"SIMULATION_MODE": "maybe"}, "SIMULATION_MODE must be true or false"),
        ({"DEFAULT_ORDER_QUANTITY": "ten"}, "DEFAULT_ORDER_QUANTITY must be a number"),
        ({"TRUSTED_PROXY_COUNT": "1.5"}, "TRUSTED_PROXY_COUNT must be a whole number"),
        ({"IDEMPOTENCY_KEY_TTL_HOURS": "0"}, "IDEMPOTENCY_KEY_TTL_HOURS must be at least 1"),
        ({"IDEMPOTENCY_KEY_TTL_HOURS": "1.5"}, "IDEMPOTENCY_KEY_TTL_HOURS must be a whole number"),
        ({"JOB_QUEUE_RUNNER_SECRET": "x" * 31}, "JOB_QUEUE_RUNNER_SECRET must be at least 32 characters"),
    ],
)
def test_refuses_invalid_values_naming_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        load_config(env)
