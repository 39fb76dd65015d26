"""The Supabase CLI layout: migrations in supabase/migrations/ (read by flask migrate too), a
supabase/config.toml, and the vendored procrastinate schema equal to the installed package's."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import re
import tomllib
from pathlib import Path

from viewzenix.db.migrate import MIGRATIONS_DIR, discover

ROOT = Path(__file__).resolve().parents[2]
VENDORED = MIGRATIONS_DIR / "20261121090100_procrastinate_schema.sql"


def test_the_loader_reads_the_supabase_cli_folder():
    assert MIGRATIONS_DIR == ROOT / "supabase" / "migrations"
    names = [m.path.name for m in discover()]
    assert names and all(re.fullmatch(r"\d{14}_[a-z0-9_]+\.sql", n) for n in names)
    assert not (ROOT / "migrations").exists() or not list((ROOT / "migrations").glob("*.sql")), (
        "migration files left in migrations/: move them to supabase/migrations/"
    )


def test_supabase_config_toml():
    config = tomllib.loads((ROOT / "supabase" / "config.toml").read_text())
    assert config["project_id"] == "viewzenix"
    assert config["db"]["major_version"] == 15


def _without_header_and_lockdown(text: str) -> str:
    lines = text.splitlines()
    while lines and (lines[0].startswith("--") or not lines[0].strip()):
        lines.pop(0)  # our header comment (the package's own file starts with "-- Procrastinate Schema")
    body = "\n".join(lines)
    # Our lock-down block at the end, with the comment that introduces it.
    body = re.sub(r"\n(--[^\n]*\n)*do \$lockdown\$.*?\$lockdown\$;\s*$", "\n", body, flags=re.S)
    return body.strip()


def test_vendored_procrastinate_schema_matches_the_installed_package():
    installed = importlib.resources.files("procrastinate.sql").joinpath("schema.sql").read_text()
    vendored = VENDORED.read_text()
    version = importlib.metadata.version("procrastinate")
    assert f"procrastinate {version} job-queue schema" in vendored, (
        f"procrastinate {version} is installed: add its migrations (procrastinate/sql/migrations/) "
        "as new files in supabase/migrations/ and update the header"
    )
    expected = _without_header_and_lockdown(installed)
    assert _without_header_and_lockdown(vendored) == expected
    # Our addition is only the lock-down of the queue's tables from the API roles.
    assert "revoke all on public.%I from anon, authenticated" in vendored
