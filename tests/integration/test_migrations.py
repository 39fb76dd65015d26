"""Migrations: Supabase CLI file names, recorded in the CLI's own table, applied once."""

from __future__ import annotations

from pathlib import Path

import pytest

from viewzenix.db.migrate import MigrationError, apply_migrations, discover


def test_files_follow_the_supabase_cli_naming():
    migrations = discover()
    assert migrations, "migrations/ holds the schema"
    assert [m.version for m in migrations] == sorted(m.version for m in migrations)


def test_applying_again_does_nothing(database_url, db):
    assert apply_migrations(database_url) == []
    with db.transaction() as conn:
        versions = [
            r["version"]
            for r in conn.execute(
                "select version from supabase_migrations.schema_migrations order by version"
            )
        ]
    assert versions == [m.version for m in discover()]


def test_bootstrap_gave_plain_postgres_what_supabase_has(db):
    with db.transaction() as conn:
        roles = {
            r["rolname"]
            for r in conn.execute(
                "select rolname from pg_roles where rolname in ('anon', 'authenticated', 'service_role')"
            )
        }
        assert roles == {"anon", "authenticated", "service_role"}
        conn.execute(
            "select set_config('request.jwt.claims', %s, true)",
            ('{"sub": "6f1c1c2e-0000-4000-8000-000000000001", "role": "authenticated"}',),
        )
        row = conn.execute(
            "select auth.uid()::text as uid, auth.role() as role, auth.jwt() ->> 'sub' as sub"
        ).fetchone()
    assert row == {
        "uid": "6f1c1c2e-0000-4000-8000-000000000001",
        "role": "authenticated",
        "sub": "6f1c1c2e-0000-4000-8000-000000000001",
    }


def test_auth_uid_is_null_without_claims(db):
    with db.transaction() as conn:
        conn.execute("select set_config('request.jwt.claims', '', true)")
        assert conn.execute("select auth.uid() as uid").fetchone()["uid"] is None


def test_misnamed_file_is_refused(tmp_path: Path, database_url):
    (tmp_path / "001_init.sql").write_text("select 1")
    with pytest.raises(MigrationError, match="14-digit timestamp"):
        apply_migrations(database_url, tmp_path)


def test_failed_migration_names_the_file_and_records_nothing(tmp_path: Path, database_url, db):
    (tmp_path / "29990101000000_broken.sql").write_text("create table public.x (")
    with pytest.raises(MigrationError, match=r"29990101000000_broken\.sql failed"):
        apply_migrations(database_url, tmp_path)
    with db.transaction() as conn:
        assert (
            conn.execute(
                "select count(*) as n from supabase_migrations.schema_migrations "
                "where version = '29990101000000'"
            ).fetchone()["n"]
            == 0
        )
