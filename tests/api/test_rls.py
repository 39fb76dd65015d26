"""Row-Level Security: user A can neither read nor change user B's rows — through the API,
and directly in SQL running as role ``authenticated`` with A's claims (as Supabase's REST layer
would), so ownership holds even where application code forgets a filter."""

from __future__ import annotations

import uuid

import psycopg
import pytest

OWNED_TABLES = [
    "webhook_configs",
    "signals",
    "orders",
    "order_events",
    "fills",
    "positions",
    "accounts",
    "users",
]
# The column naming a row's owner (the profile's own id for public.users).
OWNER = {"users": "id"}
# Rows that belong to a user rather than to a config: deleting a config keeps them.
USER_LEVEL = {"users"}


@pytest.fixture()
def two_users(app, client, make_user, jobs):
    """User B with a config that traded once; user A with nothing. Returns (a, b) dicts."""
    a_id, a_token = make_user()
    b_id, b_token = make_user()
    b_headers = {"Authorization": f"Bearer {b_token}"}
    config = client.post("/api/webhook-configs", json={"name": "B"}, headers=b_headers).json
    alert = {"ticker": "MSFT", "action": "buy", "quantity": 3, "price": 410.25}
    signal = client.post(f"/webhooks/{config['id']}/{config['token']}", json=alert).json
    jobs()
    order = client.get(f"/api/orders?signal_id={signal['signal_id']}", headers=b_headers).json[0]
    verifier = app.extensions["viewzenix"].verifier
    return (
        {
            "id": a_id,
            "headers": {"Authorization": f"Bearer {a_token}"},
            "claims": verifier.verify(a_token).raw,
        },
        {
            "id": b_id,
            "headers": b_headers,
            "claims": verifier.verify(b_token).raw,
            "config": config,
            "signal_id": signal["signal_id"],
            "order": order,
        },
    )


class TestThroughTheApi:
    def test_b_sees_own_rows(self, client, two_users):
        _, b = two_users
        assert b["order"]["status"] == "filled"
        assert client.get(f"/api/signals/{b['signal_id']}", headers=b["headers"]).status_code == 200
        assert (
            client.get(f"/api/account?config_id={b['config']['id']}", headers=b["headers"]).status_code == 200
        )

    @pytest.mark.parametrize(
        ("method", "path", "body"),
        [
            ("get", "/api/webhook-configs/{config}", None),
            ("patch", "/api/webhook-configs/{config}", {"name": "stolen"}),
            ("delete", "/api/webhook-configs/{config}", None),
            ("post", "/api/webhook-configs/{config}/rotate-token", None),
            ("get", "/api/signals/{signal}", None),
            ("get", "/api/orders/{order}", None),
            ("get", "/api/account?config_id={config}", None),
        ],
    )
    def test_a_gets_404_for_b_resources(self, client, two_users, method, path, body):
        a, b = two_users
        url = path.format(config=b["config"]["id"], signal=b["signal_id"], order=b["order"]["id"])
        response = getattr(client, method)(url, json=body, headers=a["headers"])
        assert response.status_code == 404
        assert response.json["code"] == "not_found"

    @pytest.mark.parametrize(
        "path", ["/api/signals", "/api/orders", "/api/positions", "/api/webhook-configs"]
    )
    def test_a_lists_none_of_b_rows(self, client, two_users, path):
        a, b = two_users
        response = client.get(f"{path}?config_id={b['config']['id']}", headers=a["headers"])
        if path == "/api/webhook-configs":  # no config_id filter there: A's list is simply empty
            response = client.get(path, headers=a["headers"])
        assert response.status_code == 200
        assert response.json == []

    def test_owner_deletes_config_with_all_its_rows(self, client, db, two_users):
        _, b = two_users
        response = client.delete(f"/api/webhook-configs/{b['config']['id']}", headers=b["headers"])
        assert response.status_code == 204
        with db.transaction() as conn:
            for table in [t for t in OWNED_TABLES if t not in USER_LEVEL]:
                n = conn.execute(
                    f"select count(*) as n from public.{table} where user_id = %s",
                    (b["id"],),
                ).fetchone()["n"]
                assert n == 0, table

    def test_b_config_unchanged_after_a_attempts(self, client, two_users):
        a, b = two_users
        client.patch(f"/api/webhook-configs/{b['config']['id']}", json={"name": "x"}, headers=a["headers"])
        assert (
            client.get(f"/api/webhook-configs/{b['config']['id']}", headers=b["headers"]).json["name"] == "B"
        )


class TestDirectlyInSql:
    @pytest.mark.parametrize("table", OWNED_TABLES)
    def test_a_cannot_select_b_rows(self, db, two_users, table):
        a, b = two_users
        owner = OWNER.get(table, "user_id")
        with db.transaction() as conn:  # backend role: B's rows exist
            assert (
                conn.execute(
                    f"select count(*) as n from public.{table} where {owner} = %s", (b["id"],)
                ).fetchone()["n"]
                > 0
            )
        with db.transaction(a["claims"]) as conn:
            assert conn.execute("select current_user as u").fetchone()["u"] == "authenticated"
            assert (
                conn.execute(
                    f"select count(*) as n from public.{table} where {owner} = %s", (b["id"],)
                ).fetchone()["n"]
                == 0
            )
            others = conn.execute(
                f"select count(*) as n from public.{table} where {owner} <> %s", (a["id"],)
            ).fetchone()["n"]
            assert others == 0

    def test_a_cannot_update_or_delete_b_profile_but_may_update_own(self, db, two_users):
        a, b = two_users
        with db.transaction(a["claims"]) as conn:
            updated = conn.execute(
                "update public.users set display_name = 'stolen' where id = %s", (b["id"],)
            ).rowcount
            deleted = conn.execute("delete from public.users where id = %s", (b["id"],)).rowcount
            own = conn.execute(
                "update public.users set display_name = 'A' where id = %s", (a["id"],)
            ).rowcount
        assert (updated, deleted, own) == (0, 0, 1)
        with db.transaction() as conn:
            row = conn.execute("select display_name from public.users where id = %s", (b["id"],)).fetchone()
        assert row is not None and row["display_name"] != "stolen"

    def test_a_cannot_update_or_delete_b_webhook_configs(self, db, two_users):
        a, b = two_users
        with db.transaction(a["claims"]) as conn:
            updated = conn.execute(
                "update public.webhook_configs set name = 'x' where user_id = %s", (b["id"],)
            ).rowcount
            deleted = conn.execute(
                "delete from public.webhook_configs where user_id = %s", (b["id"],)
            ).rowcount
        assert (updated, deleted) == (0, 0)
        with db.transaction() as conn:
            row = conn.execute(
                "select name from public.webhook_configs where user_id = %s", (b["id"],)
            ).fetchone()
        assert row["name"] == "B"

    @pytest.mark.parametrize("table", [t for t in OWNED_TABLES if t not in ("webhook_configs", *USER_LEVEL)])
    @pytest.mark.parametrize(
        "statement", ["update public.{t} set user_id = user_id", "delete from public.{t}"]
    )
    def test_engine_tables_are_read_only_for_users(self, db, two_users, table, statement):
        """Signals, orders, events, fills, positions and paper accounts are written by the
        backend only: not even their owner may change them (no forged fills or cash)."""
        _, b = two_users
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            with db.transaction(b["claims"]) as conn:
                conn.execute(statement.format(t=table))

    @pytest.mark.parametrize(
        ("table", "columns"),
        [
            ("positions", "(config_id, user_id, symbol, qty) values (%(config)s, %(user)s, 'AAPL', -1000)"),
            (
                "accounts",
                "(config_id, user_id, starting_cash, cash) values (%(config)s, %(user)s, 0, -5)",
            ),
        ],
    )
    def test_rows_can_only_belong_to_the_owner_of_their_config(self, db, client, two_users, table, columns):
        """Even the backend cannot attach a row for user A to user B's config: the
        (config_id, user_id) foreign key points at the config's own owner."""
        a, b = two_users
        fresh = client.post("/api/webhook-configs", json={"name": "fresh"}, headers=b["headers"]).json
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            with db.transaction() as conn:
                conn.execute(
                    f"insert into public.{table} {columns}",
                    {"config": fresh["id"], "user": a["id"]},
                )

    def test_a_cannot_insert_rows_owned_by_b(self, db, two_users):
        a, b = two_users
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            with db.transaction(a["claims"]) as conn:
                conn.execute(
                    "insert into public.webhook_configs (user_id, name, security_token_hash, token_hint) "
                    "values (%s, 'evil', '\\x00', 'xxxx')",
                    (b["id"],),
                )

    def test_a_cannot_move_own_row_to_b(self, db, client, two_users):
        a, b = two_users
        own = client.post("/api/webhook-configs", json={"name": "A"}, headers=a["headers"]).json
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            with db.transaction(a["claims"]) as conn:
                conn.execute(
                    "update public.webhook_configs set user_id = %s where id = %s",
                    (b["id"], own["id"]),
                )

    def test_anon_role_reads_nothing(self, db, two_users):
        with db.transaction() as conn:
            conn.execute("select set_config('role', 'anon', true)")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("select * from public.signals limit 1")

    def test_queue_tables_are_closed_to_api_roles(self, db, two_users):
        a, _ = two_users
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with db.transaction(a["claims"]) as conn:
                conn.execute("select * from public.procrastinate_jobs limit 1")


def test_unknown_uuid_is_404_not_500(client, auth_headers):
    response = client.get(f"/api/orders/{uuid.uuid4()}", headers=auth_headers)
    assert response.status_code == 404
