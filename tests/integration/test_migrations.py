"""Migrations: Supabase CLI file names, recorded in the CLI's own table, applied once."""

from __future__ import annotations

from pathlib import Path

import pytest

from viewzenix.db.migrate import MigrationError, apply_migrations, discover


def test_files_follow_the_supabase_cli_naming():
    migrations = discover()
    assert migrations, "supabase/migrations/ holds the schema"
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


def test_upgrading_a_database_that_traded_copies_its_paper_books_and_commissions(
    tmp_path: Path, database_url
):
    """Before the execution boundary, one set of tables was both our books and the paper broker's."""
    import shutil
    import uuid

    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from viewzenix.db.migrate import MIGRATIONS_DIR, apply_migrations
    from viewzenix.services.reconciliation import reconcile

    params = conninfo_to_dict(database_url)
    with psycopg.connect(make_conninfo(**{**params, "dbname": "postgres"}), autocommit=True) as admin:
        admin.execute("drop database if exists viewzenix_upgrade_test with (force)")
        admin.execute("create database viewzenix_upgrade_test")
    url = make_conninfo(**{**params, "dbname": "viewzenix_upgrade_test"})
    old = tmp_path / "old"
    old.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if path.name < "20261127":
            shutil.copy(path, old / path.name)
    apply_migrations(url, old)
    user_id, config_id = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(url) as conn:
        conn.execute("insert into public.users (id) values (%s)", (user_id,))
        conn.execute(
            "insert into public.webhook_configs (id, user_id, name, security_token_hash, token_hint) "
            "values (%s, %s, 'old', '\\x00', 'old')",
            (config_id, user_id),
        )
        conn.execute(
            "insert into public.paper_accounts (config_id, user_id, starting_cash, cash) "
            "values (%s, %s, 100000, 98998)",
            (config_id, user_id),
        )
        filled, resting = uuid.uuid4(), uuid.uuid4()
        for order_id, coid, status, filled_qty, price in (
            (filled, "vzx-old-en", "filled", 10, 100),
            (resting, "vzx-old-tp", "pending", 0, None),
        ):
            conn.execute(
                "insert into public.orders (id, user_id, config_id, client_order_id, broker_order_id, "
                "broker, symbol, side, order_type, time_in_force, purpose, qty, limit_price, status, "
                "filled_qty, filled_avg_price, submitted_at) values (%s, %s, %s, %s, %s, 'simulated', "
                "'AAPL', %s, %s, 'gtc', 'entry', 10, %s, %s, %s, %s, now())",
                (
                    order_id,
                    user_id,
                    config_id,
                    coid,
                    f"sim-{coid}",
                    "buy" if status == "filled" else "sell",
                    "market" if status == "filled" else "limit",
                    None if status == "filled" else 120,
                    status,
                    filled_qty,
                    price,
                ),
            )
        conn.execute(
            "insert into public.fills (order_id, user_id, config_id, trade_id, symbol, side, last_qty, "
            "last_px, commission) values (%s, %s, %s, 'vzx-old-en-1', 'AAPL', 'buy', 10, 100, 2)",
            (filled, user_id, config_id),
        )
        conn.execute(
            "insert into public.positions (config_id, symbol, user_id, qty, avg_entry_price, last_price) "
            "values (%s, 'AAPL', %s, 10, 100, 100)",
            (config_id, user_id),
        )

    apply_migrations(url)

    from viewzenix.db import Database

    db = Database(url, min_size=1, max_size=2).open()
    try:
        with db.transaction() as conn:
            paper = conn.execute(
                "select client_order_id, status from paper.orders where config_id = %s "
                "order by client_order_id",
                (config_id,),
            ).fetchall()
            account = conn.execute(
                "select cash from paper.accounts where config_id = %s", (config_id,)
            ).fetchone()
            ours = conn.execute(
                "select commission_paid from public.accounts where config_id = %s", (config_id,)
            ).fetchone()
        assert [(r["client_order_id"], r["status"]) for r in paper] == [
            ("vzx-old-en", "filled"),
            ("vzx-old-tp", "held"),
        ]
        assert account["cash"] == 98998
        assert ours["commission_paid"] == 2
        [run] = reconcile(db, config_id=config_id)
        assert run["drifts"] == []
        assert (run["orders_compared"], run["positions_compared"]) == (2, 1)
    finally:
        db.close()
