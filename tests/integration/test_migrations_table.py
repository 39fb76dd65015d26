"""The migrations' record table is the Supabase CLI's, also for databases migrated before the
files moved to supabase/migrations/ or whose table an older CLI created with ``version`` alone."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from viewzenix.db.migrate import MIGRATIONS_DIR, apply_migrations, discover


def _fresh_database(database_url: str, name: str) -> str:
    params = conninfo_to_dict(database_url)
    with psycopg.connect(make_conninfo(**{**params, "dbname": "postgres"}), autocommit=True) as admin:
        admin.execute(f"drop database if exists {name} with (force)")
        admin.execute(f"create database {name}")
    return make_conninfo(**{**params, "dbname": name})


def test_a_database_migrated_from_the_old_folder_gets_only_the_new_files(tmp_path: Path, database_url):
    url = _fresh_database(database_url, "viewzenix_cli_table_test")
    old = tmp_path / "migrations"  # the folder's old name; the versions are what count
    old.mkdir()
    first = discover()[:2]
    for migration in first:
        shutil.copy(migration.path, old / migration.path.name)
    assert apply_migrations(url, old) == [m.version for m in first]
    with psycopg.connect(url, autocommit=True) as conn:
        # As an older Supabase CLI left it: version only.
        conn.execute(
            "alter table supabase_migrations.schema_migrations drop column statements, drop column name"
        )

    applied = apply_migrations(url)

    assert applied == [m.version for m in discover()[2:]]
    with psycopg.connect(url) as conn:
        columns = {
            r[0]
            for r in conn.execute(
                "select column_name from information_schema.columns "
                "where table_schema = 'supabase_migrations' and table_name = 'schema_migrations'"
            )
        }
        rows = conn.execute(
            "select version, name, statements is not null from supabase_migrations.schema_migrations "
            "order by version"
        ).fetchall()
    assert columns == {"version", "statements", "name"}
    assert [r[0] for r in rows] == [m.version for m in discover()]
    assert all(r[1] is not None and r[2] for r in rows[2:])
    assert MIGRATIONS_DIR.name == "migrations" and MIGRATIONS_DIR.parent.name == "supabase"
