"""Flask CLI commands: ``flask --app wsgi migrate | local-token EMAIL | signin-code EMAIL |
demo-config EMAIL | reconcile | purge-idempotency-keys``."""

from __future__ import annotations

import json
import uuid

import click
from flask import Flask

from viewzenix.db import Database
from viewzenix.db.migrate import apply_migrations
from viewzenix.repositories import idempotency_keys as idempotency_repo
from viewzenix.repositories import webhook_configs as configs_repo


def ensure_local_user(db: Database, email: str) -> uuid.UUID:
    """Create (or find) a local-mode user: a row in the ``auth.users`` stand-in and its profile.

    Local mode only (plain Postgres, no Supabase Auth). Returns the user id.
    """
    with db.transaction() as conn:
        row = conn.execute(
            "insert into auth.users (id, email) values (%s, %s) "
            "on conflict (email) do update set updated_at = now() returning id",
            (uuid.uuid4(), email),
        ).fetchone()
        configs_repo.ensure_user(conn, row["id"], email)
    return row["id"]


def register(app: Flask) -> None:
    """Attach the commands to ``app.cli``."""

    @app.cli.command("migrate")
    def migrate() -> None:
        """Apply pending SQL migrations (bootstrapping a plain Postgres first)."""
        runtime = app.extensions["viewzenix"]
        applied = apply_migrations(runtime.database_url)
        click.echo(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))

    @app.cli.command("purge-idempotency-keys")
    def purge_idempotency_keys() -> None:
        """Delete the API's expired idempotency keys."""
        runtime = app.extensions["viewzenix"]
        with runtime.db.transaction() as conn:
            purged = idempotency_repo.purge_expired(conn)
        click.echo(f"purged {purged} expired idempotency key(s)")

    @app.cli.command("local-token")
    @click.argument("email")
    def local_token(email: str) -> None:
        """Print a bearer token for the local user EMAIL (created if missing). Local mode only."""
        runtime = app.extensions["viewzenix"]
        if runtime.local_signer is None:
            raise click.ClickException(
                "SUPABASE_URL is configured: sign in through Supabase Auth; local tokens are off."
            )
        user_id = ensure_local_user(runtime.db, email)
        click.echo(runtime.local_signer.issue(user_id, email))

    @app.cli.command("signin-code")
    @click.argument("email")
    def signin_code(email: str) -> None:
        """Print a one-time dashboard sign-in code for local user EMAIL. Local mode only."""
        from viewzenix.services import local_signin

        runtime = app.extensions["viewzenix"]
        if runtime.local_signer is None:
            raise click.ClickException("SUPABASE_URL is configured: sign in through Supabase Auth.")
        ensure_local_user(runtime.db, email)
        click.echo(local_signin.issue_code(runtime.db, email))

    @app.cli.command("demo-config")
    @click.argument("email")
    @click.option("--name", default="Demo (simulated broker)")
    @click.option("--settings", "settings_json", default="{}", help="JSON of trading settings")
    def demo_config(email: str, name: str, settings_json: str) -> None:
        """Create a webhook config for local user EMAIL; print it as JSON with its webhook URL."""
        from viewzenix.services import webhook_configs as service
        from viewzenix.services.common import Caller

        runtime = app.extensions["viewzenix"]
        if runtime.local_signer is None:
            raise click.ClickException("demo-config is for local mode (SUPABASE_URL is set).")
        user_id = ensure_local_user(runtime.db, email)
        token = runtime.local_signer.issue(user_id, email)
        caller = Caller(user_id=user_id, email=email, claims=runtime.verifier.verify(token).raw)
        values = {"name": name, **json.loads(settings_json)}
        row, url_token = service.create(runtime.db, caller, values)
        click.echo(
            json.dumps(
                {
                    "config_id": str(row["id"]),
                    "webhook_url": service.webhook_url(runtime.config.PUBLIC_BASE_URL, row["id"], url_token),
                    "access_token": token,
                }
            )
        )

    @app.cli.command("reconcile")
    @click.option(
        "--config", "config_id", type=click.UUID, default=None, help="One webhook config (default: all)"
    )
    @click.option("--repair", is_flag=True, help="Bring our books in line with the broker's")
    @click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON")
    def reconcile(config_id: uuid.UUID | None, repair: bool, as_json: bool) -> None:
        """Compare our orders and positions with the broker's per config; report drift, repair if asked."""
        from viewzenix.services.reconciliation import reconcile as run

        runtime = app.extensions["viewzenix"]
        runs = run(runtime.db, config_id=config_id, repair=repair)
        if as_json:
            click.echo(json.dumps(runs, default=str))
            return
        for r in runs:
            counts = ", ".join(f"{k} {v}" for k, v in r["counts"].items() if v) or "no drift"
            line = (
                f"config {r['config_id']} ({r['broker']}): {r['orders_in_drift']}/{r['orders_compared']} "
                f"orders in drift ({r['drift_rate']} %), {r['positions_in_drift']}/{r['positions_compared']} "
                f"positions; {counts}"
            )
            if repair:
                line += f"; repaired {r['repaired']}"
            if r["error"]:
                line += f"; error: {r['error']}"
            click.echo(line)
        total = sum(r["orders_in_drift"] for r in runs)
        click.echo(f"{len(runs)} config(s), {total} order(s) in drift")
