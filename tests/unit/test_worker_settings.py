"""Worker settings: the shutdown bound stays within the stalled-job threshold; retention is positive."""

from __future__ import annotations

import pytest

from config import ConfigError, load_config


def test_the_shutdown_bound_defaults_to_15_s_or_half_the_stalled_job_threshold():
    assert load_config({}).WORKER_SHUTDOWN_TIMEOUT_SECONDS == 15
    assert load_config({"STALLED_JOB_SECONDS": "10"}).WORKER_SHUTDOWN_TIMEOUT_SECONDS == 5


def test_a_shutdown_bound_over_half_the_stalled_job_threshold_is_refused():
    # Heartbeats stop while a worker winds down: a longer wait would let another worker retry its job.
    with pytest.raises(ConfigError, match="WORKER_SHUTDOWN_TIMEOUT_SECONDS must be between 1 and half"):
        load_config({"WORKER_SHUTDOWN_TIMEOUT_SECONDS": "16"})


def test_housekeeping_settings_have_their_defaults_and_refuse_a_retention_under_one_day():
    config = load_config({})
    assert (config.JOB_RETENTION_DAYS, config.DAY_ORDER_EXPIRY_CRON) == (14, "*/5 * * * *")
    with pytest.raises(ConfigError, match="JOB_RETENTION_DAYS must be at least 1"):
        load_config({"JOB_RETENTION_DAYS": "0"})
