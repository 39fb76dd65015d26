"""Configuration: environment names, production's required secrets."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from config import PROJECT_ROOT, ConfigError, DevelopmentConfig, ProductionConfig, available_cpus, load_config


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
        ({"WORKER_PROCESSES": "0"}, "WORKER_PROCESSES must be at least 1, got 0"),
        ({"WORKER_PROCESSES": "two"}, "WORKER_PROCESSES must be a whole number"),
    ],
)
def test_refuses_invalid_values_naming_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        load_config(env)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        # The default POSITION_SIZE_VALUE (0) with a sizing method that reads it: every alert
        # used to answer 500 (the webhook_configs.quantity > 0 constraint).
        ({"POSITION_SIZING_METHOD": "percent"}, "POSITION_SIZE_VALUE must be greater than 0"),
        ({"POSITION_SIZING_METHOD": "dollar", "POSITION_SIZE_VALUE": "-5"}, "POSITION_SIZE_VALUE must be"),
        ({"DEFAULT_ORDER_QUANTITY": "0"}, "DEFAULT_ORDER_QUANTITY must be greater than 0"),
        ({"POSITION_SIZING_METHOD": "kelly"}, "POSITION_SIZING_METHOD must be one of"),
        ({"STANDARD_WEBHOOK_SECRETS": "whsec_"}, "STANDARD_WEBHOOK_SECRETS holds an empty secret"),
        ({"STANDARD_WEBHOOK_SECRETS": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw whsec_"}, "empty secret"),
    ],
)
def test_bad_trading_and_hook_settings_stop_start_up_naming_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        load_config(env)


def test_a_sizing_method_with_its_value_starts():
    config = load_config({"POSITION_SIZING_METHOD": "percent", "POSITION_SIZE_VALUE": "5"})
    assert config.POSITION_SIZE_VALUE == 5


def test_signature_verifier_refuses_an_empty_standard_secret_with_a_value_error():
    from viewzenix.webhooks.signatures import SignatureVerifier

    with pytest.raises(ValueError, match="empty secret"):
        SignatureVerifier(("standard",), standard_secrets=("whsec_",))


@pytest.mark.parametrize("module", ["viewzenix.worker", "viewzenix.streams"])
def test_worker_and_streams_exit_at_start_naming_the_bad_variable(module, tmp_path):
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSITION_", "DATABASE_URL"))}
    env.update({"POSITION_SIZING_METHOD": "percent", "DATA_DIR": str(tmp_path), "VIEWZENIX_ENV": "testing"})
    try:
        done = subprocess.run(
            [sys.executable, "-m", module],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{module} started despite POSITION_SIZE_VALUE=0")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "configuration error: POSITION_SIZE_VALUE must be greater than 0 with "
        "POSITION_SIZING_METHOD=percent, got 0"
    )
    assert "Traceback" not in done.stderr


@pytest.fixture()
def no_cpu_quota(monkeypatch):
    """This machine's CPU quota, if any, out of the way: loky's reading of the cgroup files (its
    ``_cpu_count_cgroup``) answers "no quota", so a test's faked CPUs are what counts."""
    from loky.backend import context

    monkeypatch.setattr(context, "_cpu_count_cgroup", lambda os_cpu_count: os_cpu_count)
    monkeypatch.delenv("LOKY_MAX_CPU_COUNT", raising=False)
    return context


def sixteen_cpus(monkeypatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))


def test_worker_processes_default_to_the_cpus_this_process_may_use_at_most_four(monkeypatch, no_cpu_quota):
    assert load_config({}).WORKER_PROCESSES == min(len(os.sched_getaffinity(0)), 4)
    sixteen_cpus(monkeypatch)
    assert load_config({}).WORKER_PROCESSES == 4  # connections: 5-9 per worker process
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert load_config({}).WORKER_PROCESSES == 1
    assert load_config({"WORKER_PROCESSES": "3"}).WORKER_PROCESSES == 3


def test_a_containers_cpu_quota_sets_the_default_not_the_cpus_it_sees(monkeypatch, no_cpu_quota):
    """16 CPUs in the affinity mask, a quota of 1.5 CPUs (``docker run --cpus=1.5``): 2 worker
    processes (loky rounds a quota up). The reading of the quota file itself is loky's, faked here
    at the function that reads it."""
    sixteen_cpus(monkeypatch)
    monkeypatch.setattr(no_cpu_quota, "_cpu_count_cgroup", lambda os_cpu_count: 2)
    assert available_cpus() == 2
    assert load_config({}).WORKER_PROCESSES == 2


def test_loky_max_cpu_count_caps_the_count_and_must_be_a_number(monkeypatch, no_cpu_quota):
    sixteen_cpus(monkeypatch)
    monkeypatch.setenv("LOKY_MAX_CPU_COUNT", "3")
    assert load_config({}).WORKER_PROCESSES == 3
    monkeypatch.setenv("LOKY_MAX_CPU_COUNT", "")  # as an empty line of .env leaves it
    with pytest.raises(ConfigError, match="LOKY_MAX_CPU_COUNT must be a whole number, got ''"):
        load_config({})
    # Set explicitly, the worker count needs no CPU count, so nothing reads the bad cap.
    assert load_config({"WORKER_PROCESSES": "2"}).WORKER_PROCESSES == 2


def test_gunicorn_starts_two_workers_per_usable_cpu_plus_one(tmp_path):
    """gunicorn.conf.py's default on a host of 16 CPUs with 1 usable (loky's cap stands in for a
    quota), read from another folder as ``gunicorn --config /path/gunicorn.conf.py`` reads it."""
    script = (
        "import os, runpy, sys\n"
        "os.cpu_count = lambda: 16\n"
        "os.sched_getaffinity = lambda pid: set(range(16))\n"
        f"print(runpy.run_path({str(PROJECT_ROOT / 'gunicorn.conf.py')!r})['workers'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("WEB_CONCURRENCY", "PYTHONPATH")}
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)

    def workers(**extra: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", script],
            cwd=tmp_path,
            env={**env, **extra},
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    assert workers(LOKY_MAX_CPU_COUNT="1") == "3"  # 2 x 1 + 1, not 2 x 16 + 1
    assert workers(LOKY_MAX_CPU_COUNT="1", WEB_CONCURRENCY="7") == "7"
