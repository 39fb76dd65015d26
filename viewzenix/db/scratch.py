"""A fresh, migrated scratch database for benchmark scripts (never used by the app).

``fresh_database(name, data_dir)`` drops and recreates database ``name`` on the server in
``DATABASE_URL``, or else on an embedded Postgres kept under ``data_dir``, applies every
migration and returns ``(url, server_handle)`` (keep the handle alive while the database is used;
it is None with DATABASE_URL).
"""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from viewzenix.db.migrate import apply_migrations


def fresh_database(name: str, data_dir: Path) -> tuple[str, object | None]:
    """Return ``(url, handle)`` of a new, migrated database ``name`` (see module doc)."""
    server_url, handle = os.environ.get("DATABASE_URL"), None
    if not server_url:
        from viewzenix.db.embedded import start_embedded

        server_url, handle = start_embedded(data_dir)
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'drop database if exists "{name}" with (force)')
        admin.execute(f'create database "{name}"')
    url = make_conninfo(**{**conninfo_to_dict(server_url), "dbname": name})
    apply_migrations(url)
    return url, handle
