"""Flask CLI commands: ``flask --app wsgi migrate | local-token EMAIL | signin-code EMAIL |
demo-config EMAIL | reconcile | purge-idempotency-keys | sync check watchers|users |
alpaca-credentials CONFIG_ID | rotate-credentials | market-feed CONFIG_ID SYMBOL...``."""

from __future__ import annotations

import json
import uuid

import click
from flask import Flask

from viewzenix.db.migrate import apply_migrations
from viewzenix.repositories import idempotency_keys as idempotency_repo
from viewzenix.services.local_signin import ensure_local_user


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
    @click.option(
        "--admin", is_flag=True, help="An admin's token (app_metadata.role = admin): the admin API."
    )
    def local_token(email: str, admin: bool) -> None:
        """Print a bearer token for the local user EMAIL (created if missing). Local mode only."""
        runtime = app.extensions["viewzenix"]
        if runtime.local_signer is None:
            raise click.ClickException(
                "SUPABASE_URL is configured: sign in through Supabase Auth; local tokens are off."
            )
        user_id = ensure_local_user(runtime.db, email)
        app_metadata = {"role": "admin"} if admin else None
        click.echo(runtime.local_signer.issue(user_id, email, app_metadata=app_metadata))

    @app.cli.command("signin-code")
    @click.argument("email")
    @click.option("--admin", is_flag=True, help="The code signs in an admin (the dashboard's admin tools).")
    def signin_code(email: str, admin: bool) -> None:
        """Print a one-time dashboard sign-in code for local user EMAIL. Local mode only."""
        from viewzenix.services import local_signin

        runtime = app.extensions["viewzenix"]
        if runtime.local_signer is None:
            raise click.ClickException("SUPABASE_URL is configured: sign in through Supabase Auth.")
        ensure_local_user(runtime.db, email)
        click.echo(local_signin.issue_code(runtime.db, email, admin=admin))

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

    @app.cli.group("sync")
    def sync() -> None:
        """Supabase sync: compare what the database webhooks keep in step, repair drift."""

    @sync.command("check")
    @click.argument("target", type=click.Choice(["watchers", "users"]))
    @click.option("--repair", is_flag=True, help="Apply the difference (idempotent, ordered)")
    @click.option("--force", is_flag=True, help="Repair even above 50 %% drift")
    @click.option(
        "--source",
        type=click.Choice(["auto", "same", "database", "auth-api"]),
        default=None,
        help="Where the truth is (default: SYNC_USERS_SOURCE for users, else auto)",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print the report as JSON")
    def sync_check(target: str, repair: bool, force: bool, source: str | None, as_json: bool) -> None:
        """Compare TARGET (watchers or users) with its source; report missing, extra, differing rows."""
        from viewzenix.services import sync_check as service

        runtime = app.extensions["viewzenix"]
        config = runtime.config
        choice = source or (config.SYNC_USERS_SOURCE if target == "users" else "auto")
        try:
            reader = service.source_for(
                target,
                runtime.db,
                choice=choice,
                source_database_url=config.SYNC_SOURCE_DATABASE_URL,
                supabase_url=config.SUPABASE_URL,
                supabase_key=config.SUPABASE_SERVICE_ROLE_KEY,
            )
            report = service.check(
                runtime.db,
                target,
                reader,
                repair=repair,
                force=force,
                users_on_delete=config.SUPABASE_USERS_ON_DELETE,
            )
        except (ValueError, service.RepairRefused) as exc:
            raise click.ClickException(str(exc)) from None
        if as_json:
            click.echo(json.dumps(report.as_dict()))
            return
        line = (
            f"{target} ({report.source}): {report.in_drift}/{report.target_rows + len(report.missing)} "
            f"in drift ({report.drift_rate} %): missing {len(report.missing)}, extra {len(report.extra)}, "
            f"differing {len(report.differing)}"
        )
        if report.invalid:
            line += f"; {len(report.invalid)} invalid source row(s) skipped"
        if repair:
            line += f"; repaired {report.repaired}"
        click.echo(line)

    @app.cli.command("alpaca-credentials")
    @click.argument("config_id", type=click.UUID)
    @click.option("--key-id", envvar="ALPACA_KEY_ID", required=True, help="Alpaca API key id")
    @click.option("--secret", envvar="ALPACA_SECRET", required=True, help="Alpaca API secret key")
    @click.option("--live", is_flag=True, help="Trade LIVE (real money) instead of paper")
    @click.option("--url", "api_url", default=None, help="Another Alpaca address (a proxy, a test fake)")
    def alpaca_credentials(
        config_id: uuid.UUID, key_id: str, secret: str, live: bool, api_url: str | None
    ) -> None:
        """Set a config's Alpaca keys (encrypted) as the operator; --url is only settable here."""
        from viewzenix.services.broker_credentials import store_alpaca_credentials

        runtime = app.extensions["viewzenix"]
        store_alpaca_credentials(
            runtime.db, config_id, key_id=key_id, secret_key=secret, live=live, api_url=api_url
        )
        click.echo(f"alpaca credentials set for config {config_id} ({'live' if live else 'paper'})")

    @app.cli.command("market-feed")
    @click.argument("config_id", type=click.UUID)
    @click.argument("symbols", nargs=-1, required=True)
    @click.option("--replay", "replay_csv", default=None, help="Bars from this CSV (one symbol) instead")
    @click.option("--speed", type=float, default=0.0, help="Replay speed (bar time ÷ wall time); 0: at once")
    def market_feed(
        config_id: uuid.UUID, symbols: tuple[str, ...], replay_csv: str | None, speed: float
    ) -> None:
        """Feed SYMBOLS' bars into a config's paper account: from --replay CSV, else its data source.

        Each bar is stored and applied as a bar pushed on the webhook URL (the worker applies
        it). With its source (alpaca, ccxt:<id>) it runs until interrupted.
        """
        import time

        from viewzenix.marketdata.replay import Replay
        from viewzenix.repositories import webhook_configs as configs_repo
        from viewzenix.services.market_feed import MarketFeed

        runtime = app.extensions["viewzenix"]
        with runtime.db.transaction() as conn:
            config = configs_repo.get(conn, config_id)
        if config is None:
            raise click.ClickException(f"no webhook config {config_id}")
        if replay_csv is not None:
            if len(symbols) != 1:
                raise click.ClickException("--replay feeds one symbol: give exactly one")
            replay = Replay.from_csv(replay_csv, symbols[0].upper())
            feed = MarketFeed(runtime.db, runtime.jobs, config_id, replay, [symbols[0].upper()]).start()
            replay.run(speed=speed or None)
            feed.close()
            click.echo(f"fed {len(replay)} bar(s): {json.dumps(feed.outcomes, sort_keys=True)}")
            return
        source = runtime.accounts.market_data(config)
        if source is None:
            raise click.ClickException(
                f"config {config_id}'s market_data_source {config['market_data_source']!r} pushes its "
                "bars on the webhook URL (or has no Alpaca keys): nothing to feed; use --replay"
            )
        feed = MarketFeed(runtime.db, runtime.jobs, config_id, source, [s.upper() for s in symbols]).start()
        click.echo(f"feeding {', '.join(symbols)} from {source.name}; Ctrl-C stops")
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
        finally:
            feed.close()

    @app.cli.command("rotate-credentials")
    def rotate_credentials() -> None:
        """Re-encrypt every stored broker credential with the first CREDENTIALS_ENCRYPTION_KEY key."""
        from viewzenix.services.broker_credentials import rotate_encryption_key

        count = rotate_encryption_key(app.extensions["viewzenix"].db)
        click.echo(f"re-encrypted {count} credential row(s) with the current key")
