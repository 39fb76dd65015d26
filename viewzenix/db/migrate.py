"""Apply the SQL files in ``supabase/migrations/`` in order and record them.

The folder is the Supabase CLI's (``supabase/config.toml`` beside it), files are named like the
CLI's (``<14-digit timestamp>_<name>.sql``) and recorded in the table the Supabase CLI itself uses,
``supabase_migrations.schema_migrations(version, statements, name)``, so ``supabase db push`` and
this command apply the same files and agree on what a database already has. Databases migrated
before the files moved from ``migrations/`` keep their rows: the versions did not change. A table
created by an older CLI with ``version`` alone gets the other two columns.
A plain Postgres first gets ``bootstrap.sql`` (roles, ``auth`` schema stand-in); where
``auth.users`` exists (any Supabase project) the bootstrap is skipped.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

logger = logging.getLogger(__name__)

# The one place the loader reads migrations from (the Supabase CLI's folder).
MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "supabase" / "migrations"
BOOTSTRAP_SQL = Path(__file__).with_name("bootstrap.sql")
_NAME = re.compile(r"^(?P<version>\d{14})_(?P<name>[a-z0-9_]+)\.sql$")
# One advisory lock key for "migrations running" so two releases cannot interleave.
_LOCK_KEY = 0x56_5A_58_4D  # "VZXM"


class MigrationError(RuntimeError):
    """A migration file is misnamed or failed to apply."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path

    @classmethod
    def from_path(cls, path: Path) -> Migration:
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(
                f"{path.name}: migration files are named <14-digit timestamp>_<name>.sql "
                "(Supabase CLI convention)"
            )
        return cls(match["version"], match["name"], path)


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Return the migrations in ``directory`` sorted by version. Raises MigrationError."""
    found = sorted((Migration.from_path(p) for p in directory.glob("*.sql")), key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version timestamp")
    return found


def apply_migrations(url: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Bootstrap if needed, then apply every pending migration, each in its own transaction.

    Returns the versions applied now (empty when the database is up to date).
    Raises MigrationError naming the file that failed.
    """
    applied_now: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            has_auth = conn.execute("select to_regclass('auth.users') is not null").fetchone()[0]
            if not has_auth:
                logger.info("bootstrapping plain postgres", extra={"action": "db_bootstrap"})
                conn.execute(BOOTSTRAP_SQL.read_text())
            conn.execute("create schema if not exists supabase_migrations")
            conn.execute(
                "create table if not exists supabase_migrations.schema_migrations "
                "(version text primary key, statements text[], name text)"
            )
            conn.execute(
                "alter table supabase_migrations.schema_migrations "
                "add column if not exists statements text[], add column if not exists name text"
            )
            done = {
                row[0] for row in conn.execute("select version from supabase_migrations.schema_migrations")
            }
            for migration in discover(directory):
                if migration.version in done:
                    continue
                sql = migration.path.read_text()
                try:
                    with conn.transaction():
                        conn.execute(sql)
                        conn.execute(
                            "insert into supabase_migrations.schema_migrations "
                            "(version, statements, name) values (%s, %s, %s)",
                            (migration.version, [sql], migration.name),
                        )
                except psycopg.Error as exc:
                    raise MigrationError(f"{migration.path.name} failed: {exc}") from exc
                logger.info(
                    "applied migration %s_%s",
                    migration.version,
                    migration.name,
                    extra={"action": "migration_applied", "version": migration.version},
                )
                applied_now.append(migration.version)
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now
