"""Duplicate alerts produce one signal: a resend, or one alert fired twice, runs once.

Over HTTP, on a real Postgres. Within a config's ``dedupe_window_seconds`` (default 60, 0 = off)
an accepted alert with the same explicit ``id`` (same ticker and action), or else the same body,
answers 200 with the original's ``signal_id`` and ``"duplicate": true``, is stored as a
``duplicate`` signal pointing at the original, and defers no job. Refused alerts are never
deduplicated.
"""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from viewzenix.repositories import signal_dedupe
from viewzenix.repositories import webhook_configs as configs_repo
from viewzenix.services.webhook_configs import token_digest


def new_config(client, headers, **settings):
    data = client.post("/api/webhook-configs", json={"name": "dedupe", **settings}, headers=headers).json
    return {**data, "headers": headers, "url": f"/webhooks/{data['id']}/{data['token']}"}


@pytest.fixture()
def config(client, auth_headers):
    return new_config(client, auth_headers)


def unique_body(**fields) -> bytes:
    """A market alert no other test sends (its price is unique), with ``fields`` added."""
    price = f"{100 + uuid.uuid4().int % 10**6 / 10**4:.4f}"
    return json.dumps({"ticker": "AAPL", "action": "buy", "quantity": 2, "price": price, **fields}).encode()


def post(client, url, body: bytes, **kwargs):
    return client.post(url, data=body, content_type="application/json", **kwargs)


def signals_of(db, config_id) -> list[dict]:
    with db.transaction() as conn:
        return conn.execute(
            "select * from public.signals where config_id = %s order by received_at, status",
            (config_id,),
        ).fetchall()


def by_status(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in rows:
        out.setdefault(row["status"], []).append(row)
    return out


def expire_claims(db, config_id) -> None:
    """Move the config's dedupe windows into the past (as if 60 s had gone by)."""
    with db.transaction() as conn:
        conn.execute(
            "update public.signal_dedupe set expires_at = now() - interval '1 second' where config_id = %s",
            (config_id,),
        )


class TestResends:
    def test_same_body_four_times_is_one_signal_three_duplicates_and_one_order(
        self, client, db, config, jobs
    ):
        body = unique_body()
        answers = [
            post(client, config["url"], body, environ_base={"REMOTE_ADDR": "52.89.214.238"}) for _ in range(4)
        ]

        assert [a.status_code for a in answers] == [200] * 4
        original_id = answers[0].json["signal_id"]
        assert [a.json["signal_id"] for a in answers] == [original_id] * 4
        assert [a.json["duplicate"] for a in answers] == [False, True, True, True]
        assert [a.json["status"] for a in answers] == ["accepted"] + ["duplicate"] * 3

        rows = by_status(signals_of(db, config["id"]))
        assert {status: len(r) for status, r in rows.items()} == {"accepted": 1, "duplicate": 3}
        (original,) = rows["accepted"]
        assert str(original["id"]) == original_id and original["duplicate_of"] is None
        duplicates = rows["duplicate"]
        assert sorted(str(d["id"]) for d in duplicates) == sorted(
            a.json["duplicate_signal_id"] for a in answers[1:]
        )
        for duplicate in duplicates:
            assert str(duplicate["duplicate_of"]) == original_id
            assert duplicate["raw_body"] == body.decode()
            assert str(duplicate["source_ip"]) == "52.89.214.238"
            assert duplicate["ticker"] == "AAPL" and duplicate["job_id"] is None
        with db.transaction() as conn:
            deferred = conn.execute(
                "select count(*) as n from procrastinate_jobs where args ->> 'signal_id' = any(%s)",
                ([str(r["id"]) for r in [original, *duplicates]],),
            ).fetchone()["n"]
        assert deferred == 1

        jobs()
        orders = client.get(f"/api/orders?config_id={config['id']}", headers=config["headers"]).json
        assert [(o["signal_id"], o["side"], o["qty"]) for o in orders] == [(original_id, "buy", "2")]

    def test_duplicates_are_listed_and_counted_in_the_signal_log(self, client, config):
        body = unique_body()
        original_id = post(client, config["url"], body).json["signal_id"]
        resend = post(client, config["url"], body).json
        headers = config["headers"]

        listed = client.get(f"/api/signals?config_id={config['id']}&status=duplicate", headers=headers)
        assert listed.status_code == 200
        assert [(s["id"], s["status"], s["duplicate_of"]) for s in listed.json] == [
            (resend["duplicate_signal_id"], "duplicate", original_id)
        ]
        assert json.loads(listed.headers["X-Pagination"])["total"] == 1

        detail = client.get(f"/api/signals/{resend['duplicate_signal_id']}", headers=headers).json
        assert (detail["status"], detail["duplicate_of"], detail["raw_body"]) == (
            "duplicate",
            original_id,
            body.decode(),
        )
        original = client.get(f"/api/signals/{original_id}", headers=headers).json
        assert (original["duplicate_of"], original["duplicates"]) == (None, 1)

    def test_four_concurrent_posts_of_one_body_make_one_accepted_signal(self, app, db, config):
        """Each round: 4 threads, released together, post one body; the claims race in Postgres."""
        for _ in range(5):
            body = unique_body()
            start = threading.Barrier(4)

            def send(_: int, body: bytes = body, start: threading.Barrier = start):
                client = app.test_client()
                start.wait(timeout=10)
                response = post(client, config["url"], body)
                return response.status_code, response.json

            with ThreadPoolExecutor(max_workers=4) as pool:
                answers = list(pool.map(send, range(4)))

            assert [status for status, _ in answers] == [200] * 4
            assert len({answer["signal_id"] for _, answer in answers}) == 1
            assert sorted(answer["duplicate"] for _, answer in answers) == [False, True, True, True]
        rows = by_status(signals_of(db, config["id"]))
        assert (len(rows["accepted"]), len(rows["duplicate"])) == (5, 15)
        accepted_ids = {r["id"] for r in rows["accepted"]}
        assert {r["duplicate_of"] for r in rows["duplicate"]} == accepted_ids


class TestWindow:
    def test_same_body_after_the_window_is_a_new_signal(self, client, db, config):
        body = unique_body()
        first = post(client, config["url"], body).json
        expire_claims(db, config["id"])
        later = post(client, config["url"], body).json
        assert later["duplicate"] is False and later["signal_id"] != first["signal_id"]
        again = post(client, config["url"], body).json  # the new signal owns the key now
        assert (again["duplicate"], again["signal_id"]) == (True, later["signal_id"])

    def test_window_of_zero_turns_deduplication_off(self, client, db, config):
        client.patch(
            f"/api/webhook-configs/{config['id']}",
            json={"dedupe_window_seconds": 0},
            headers=config["headers"],
        )
        body = unique_body(id="resend-1")
        answers = [post(client, config["url"], body).json for _ in range(2)]
        assert [a["duplicate"] for a in answers] == [False, False]
        assert answers[0]["signal_id"] != answers[1]["signal_id"]
        assert [r["status"] for r in signals_of(db, config["id"])] == ["accepted", "accepted"]
        with db.transaction() as conn:
            claims = conn.execute(
                "select count(*) as n from public.signal_dedupe where config_id = %s", (config["id"],)
            ).fetchone()["n"]
        assert claims == 0, "off means nothing is claimed"

    def test_different_configs_never_deduplicate_each_other(self, client, db, auth_headers):
        first, second = new_config(client, auth_headers), new_config(client, auth_headers)
        body = unique_body(id="same-id")
        answers = [post(client, c["url"], body).json for c in (first, second)]
        assert [a["duplicate"] for a in answers] == [False, False]
        assert [r["status"] for c in (first, second) for r in signals_of(db, c["id"])] == ["accepted"] * 2


class TestExplicitId:
    def test_two_bodies_with_one_id_are_one_signal(self, client, config):
        first = post(client, config["url"], unique_body(id="order-42")).json
        second = post(client, config["url"], unique_body(id="order-42")).json  # another price
        assert (second["duplicate"], second["signal_id"]) == (True, first["signal_id"])

    def test_numeric_id_counts_as_an_id(self, client, config):
        first = post(client, config["url"], unique_body(id=42)).json
        second = post(client, config["url"], unique_body(id=42)).json
        assert (second["duplicate"], second["signal_id"]) == (True, first["signal_id"])

    def test_same_id_after_the_window_is_a_new_signal(self, client, db, config):
        """An id such as {{strategy.order.id}} = "Long" comes back with every trade."""
        first = post(client, config["url"], unique_body(id="Long")).json
        expire_claims(db, config["id"])
        later = post(client, config["url"], unique_body(id="Long")).json
        assert later["duplicate"] is False and later["signal_id"] != first["signal_id"]

    @pytest.mark.parametrize(
        "other", [{"ticker": "MSFT"}, {"action": "sell"}], ids=["another-ticker", "another-action"]
    )
    def test_one_id_on_another_ticker_or_action_is_another_signal(self, client, config, other):
        """A watchlist alert sends "id": "Long" for every symbol; "Exit" closes either side."""
        first = post(client, config["url"], unique_body(id="Long")).json
        second = post(client, config["url"], unique_body(id="Long", **other)).json
        assert second["duplicate"] is False and second["signal_id"] != first["signal_id"]

    def test_strategy_order_id_of_the_passphrase_format_is_not_an_alert_id(self, client, config):
        """strategy.order_id is {{strategy.order.id}}, an order name: two trades of "Long"
        differ in body, so both run."""

        def strategy_body(price: str) -> bytes:
            return json.dumps(
                {
                    "ticker": "AAPL",
                    "strategy": {
                        "order_action": "buy",
                        "order_contracts": 1,
                        "order_price": price,
                        "order_id": "Long",
                    },
                }
            ).encode()

        answers = [post(client, config["url"], strategy_body(p)).json for p in ("101.5", "102.5")]
        assert [a["duplicate"] for a in answers] == [False, False]
        resend = post(client, config["url"], strategy_body("102.5")).json
        assert (resend["duplicate"], resend["signal_id"]) == (True, answers[1]["signal_id"])


class TestOnlyAcceptedAlerts:
    def test_refused_body_is_stored_as_rejected_each_time(self, client, db, config):
        body = b'{"ticker": "AAPL", "action": "buy",}'
        answers = [post(client, config["url"], body) for _ in range(2)]
        assert [a.status_code for a in answers] == [400, 400]
        assert answers[0].json["signal_id"] != answers[1].json["signal_id"]
        assert "duplicate" not in answers[1].json
        rows = signals_of(db, config["id"])
        assert [(r["status"], r["reject_code"], r["duplicate_of"]) for r in rows] == [
            ("rejected", "trailing_comma", None)
        ] * 2

    def test_alert_refused_by_an_inactive_config_claims_nothing(self, client, db, config):
        patch = f"/api/webhook-configs/{config['id']}"
        client.patch(patch, json={"is_active": False}, headers=config["headers"])
        body = unique_body()
        assert [post(client, config["url"], body).status_code for _ in range(2)] == [403, 403]
        client.patch(patch, json={"is_active": True}, headers=config["headers"])
        assert post(client, config["url"], body).json["duplicate"] is False
        assert [r["status"] for r in signals_of(db, config["id"])] == ["rejected", "rejected", "accepted"]

    def test_wrong_token_claims_nothing(self, client, db, config):
        body = unique_body()
        assert post(client, f"/webhooks/{config['id']}/not-the-token", body).status_code == 404
        with db.transaction() as conn:
            claims = conn.execute(
                "select count(*) as n from public.signal_dedupe where config_id = %s", (config["id"],)
            ).fetchone()["n"]
        assert claims == 0
        assert post(client, config["url"], body).json["duplicate"] is False


class TestSingleTenant:
    def test_webhook_deduplicates_too(self, client, db):
        body = unique_body(passphrase="test-passphrase")
        answers = [post(client, "/webhook", body) for _ in range(2)]
        assert [a.status_code for a in answers] == [200, 200]
        assert [a.json["duplicate"] for a in answers] == [False, True]
        assert answers[1].json["signal_id"] == answers[0].json["signal_id"]
        with db.transaction() as conn:
            row = conn.execute(
                "select * from public.signals where id = %s", (answers[1].json["duplicate_signal_id"],)
            ).fetchone()
        assert (row["status"], str(row["duplicate_of"])) == ("duplicate", answers[0].json["signal_id"])
        assert "test-passphrase" not in row["raw_body"]

    def test_wrong_passphrase_is_rejected_each_time(self, client):
        body = unique_body(passphrase="guess")
        answers = [post(client, "/webhook", body) for _ in range(2)]
        assert [a.status_code for a in answers] == [401, 401]
        assert answers[0].json["signal_id"] != answers[1].json["signal_id"]


class TestSetting:
    def test_defaults_to_60_seconds_and_can_be_changed(self, client, config):
        assert config["dedupe_window_seconds"] == 60
        url = f"/api/webhook-configs/{config['id']}"
        for value in (0, 5, 86400):
            response = client.patch(url, json={"dedupe_window_seconds": value}, headers=config["headers"])
            assert response.status_code == 200 and response.json["dedupe_window_seconds"] == value
        assert client.get(url, headers=config["headers"]).json["dedupe_window_seconds"] == 86400

    @pytest.mark.parametrize("value", [-1, 86401, 1.5, "soon", None, True])
    def test_refuses_a_window_out_of_range_or_not_an_integer(self, client, auth_headers, value):
        response = client.post(
            "/api/webhook-configs", json={"name": "x", "dedupe_window_seconds": value}, headers=auth_headers
        )
        assert response.status_code == 422
        assert "dedupe_window_seconds" in response.json["errors"]["json"]

    def test_is_in_the_openapi_schema(self, client):
        schemas = client.get("/api/openapi.json").json["components"]["schemas"]
        for name in ("WebhookConfigCreate", "WebhookConfigUpdate", "WebhookConfig"):
            field = schemas[name]["properties"]["dedupe_window_seconds"]
            assert (field["type"], field["minimum"], field["maximum"]) == ("integer", 0, 86400)


class TestClaims:
    def test_a_concurrent_claimant_waits_for_the_first_then_is_its_duplicate(self, db, config):
        """Deterministic interleaving: B's claim blocks on A's uncommitted one, then returns A's id."""
        digest = token_digest(config["token"])
        key = f"body:{uuid.uuid4().hex}"
        first_id, second_id = uuid.uuid4(), uuid.uuid4()
        claimed: dict[str, object] = {}

        def claim_second():
            with db.transaction() as conn:
                row = configs_repo.get_for_intake(
                    conn, config["id"], token_hash=digest, dedupe_key=key, signal_id=second_id
                )
                claimed["second"] = row["claimed_by"]

        with db.transaction() as conn:
            row = configs_repo.get_for_intake(
                conn, config["id"], token_hash=digest, dedupe_key=key, signal_id=first_id
            )
            assert row["claimed_by"] == first_id
            second = threading.Thread(target=claim_second)
            second.start()
            second.join(timeout=0.5)
            assert second.is_alive(), "the second claim must wait for the first transaction"
        second.join(timeout=10)
        assert claimed["second"] == first_id

    def test_a_claim_whose_transaction_rolled_back_leaves_the_key_free(self, db, config):
        digest = token_digest(config["token"])
        key = f"body:{uuid.uuid4().hex}"
        with pytest.raises(RuntimeError):
            with db.transaction() as conn:
                configs_repo.get_for_intake(
                    conn, config["id"], token_hash=digest, dedupe_key=key, signal_id=uuid.uuid4()
                )
                raise RuntimeError("the signal could not be stored")
        ours = uuid.uuid4()
        with db.transaction() as conn:
            row = configs_repo.get_for_intake(
                conn, config["id"], token_hash=digest, dedupe_key=key, signal_id=ours
            )
        assert row["claimed_by"] == ours

    def test_purge_expired_deletes_only_expired_claims(self, client, db, auth_headers):
        expired, live = new_config(client, auth_headers), new_config(client, auth_headers)
        for c in (expired, live):
            post(client, c["url"], unique_body())
        expire_claims(db, expired["id"])
        with db.transaction() as conn:
            purged = signal_dedupe.purge_expired(conn)
            left = {
                str(r["config_id"])
                for r in conn.execute(
                    "select config_id from public.signal_dedupe where config_id = any(%s)",
                    ([expired["id"], live["id"]],),
                )
            }
        assert purged >= 1
        assert left == {live["id"]}

    def test_deleting_a_config_deletes_its_claims(self, client, db, config):
        post(client, config["url"], unique_body())
        client.delete(f"/api/webhook-configs/{config['id']}", headers=config["headers"])
        with db.transaction() as conn:
            n = conn.execute(
                "select count(*) as n from public.signal_dedupe where config_id = %s", (config["id"],)
            ).fetchone()["n"]
        assert n == 0

    @pytest.mark.parametrize("role", ["anon", "authenticated"])
    def test_dedupe_table_is_closed_to_api_roles(self, db, role):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with db.transaction() as conn:
                conn.execute("select set_config('role', %s, true)", (role,))
                conn.execute("select * from public.signal_dedupe limit 1")
