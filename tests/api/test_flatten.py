"""Close and flatten through the API: exit signals with source ``manual`` that run the normal
engine, ledger and broker path; allowed on paused or turned-off webhooks; never twice; refused
without a price or a live confirmation; another user's configs untouched."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest

pytestmark = pytest.mark.db


def create(client, headers, **fields):
    response = client.post("/api/webhook-configs", json={"name": "controls", **fields}, headers=headers)
    assert response.status_code == 201, response.json
    return response.json


def send(client, config, body):
    response = client.post(f"/webhooks/{config['id']}/{config['token']}", data=json.dumps(body))
    assert response.status_code == 200, response.json
    assert response.json["status"] == "accepted", response.json
    return response.json["signal_id"]


def buy(client, config, ticker, qty, price):
    return send(client, config, {"ticker": ticker, "action": "buy", "quantity": qty, "price": price})


def signals_of(db, config_id):
    with db.transaction() as conn:
        return conn.execute(
            "select id, ticker, action, status, source, outcome_message from public.signals "
            "where config_id = %s order by received_at, id",
            (config_id,),
        ).fetchall()


def orders_of(db, signal_id):
    with db.transaction() as conn:
        return conn.execute(
            "select purpose, side, qty, symbol, order_type, status, filled_avg_price, status_code "
            "from public.orders where signal_id = %s order by created_at",
            (signal_id,),
        ).fetchall()


def position(db, config_id, symbol):
    with db.transaction() as conn:
        row = conn.execute(
            "select qty from public.positions where config_id = %s and symbol = %s", (config_id, symbol)
        ).fetchone()
    return None if row is None else row["qty"]


def close(client, headers, config, symbol, **body):
    return client.post(
        f"/api/webhook-configs/{config['id']}/positions/{symbol}/close", json=body, headers=headers
    )


def flatten(client, headers, config, **body):
    return client.post(f"/api/webhook-configs/{config['id']}/flatten", json=body, headers=headers)


class TestClose:
    def test_closes_one_position_through_an_exit_signal_and_says_what_it_sent(
        self, client, auth_headers, db, jobs
    ):
        config = create(client, auth_headers)
        buy(client, config, "AAPL", 5, 100)
        buy(client, config, "MSFT", 2, 300)
        jobs()

        response = close(client, auth_headers, config, "aapl")

        assert response.status_code == 200, response.json
        body = response.json
        assert body["config_id"] == config["id"] and body["source"] == "manual"
        [sent] = body["sent"]
        assert {k: sent[k] for k in ("symbol", "action", "status", "side", "qty", "open_orders")} == {
            "symbol": "AAPL",
            "action": "exit",
            "status": "accepted",
            "side": "sell",
            "qty": "5",
            "open_orders": 0,
        }
        stored = signals_of(db, config["id"])[-1]
        assert (str(stored["id"]), stored["action"], stored["status"], stored["source"]) == (
            sent["signal_id"],
            "exit",
            "accepted",
            "manual",
        )
        jobs()
        [order] = orders_of(db, sent["signal_id"])
        assert (order["purpose"], order["side"], order["qty"], order["order_type"], order["status"]) == (
            "exit",
            "sell",
            Decimal(5),
            "market",
            "filled",
        )
        assert order["filled_avg_price"] == Decimal(100)  # the last price our books know
        assert position(db, config["id"], "AAPL") == 0
        assert position(db, config["id"], "MSFT") == 2  # the other position is left alone
        assert signals_of(db, config["id"])[-1]["status"] == "executed"
        listed = client.get(f"/api/signals?config_id={config['id']}", headers=auth_headers).json
        assert [(s["ticker"], s["action"], s["source"]) for s in listed][:2] == [
            ("AAPL", "exit", "manual"),
            ("MSFT", "buy", "tradingview"),
        ]
        detail = client.get(f"/api/signals/{sent['signal_id']}", headers=auth_headers).json
        assert (detail["source"], detail["status"]) == ("manual", "executed")

    def test_runs_on_a_paused_and_turned_off_webhook(self, client, auth_headers, db, jobs):
        config = create(client, auth_headers)
        buy(client, config, "AAPL", 3, 100)
        jobs()
        patched = client.patch(
            f"/api/webhook-configs/{config['id']}",
            json={"entries_paused": True, "is_active": False},
            headers=auth_headers,
        )
        assert patched.status_code == 200
        refused = client.post(
            f"/webhooks/{config['id']}/{config['token']}",
            data=json.dumps({"ticker": "AAPL", "action": "exit"}),
        )
        assert refused.json["code"] == "config_inactive"  # the webhook URL refuses even exits

        response = close(client, auth_headers, config, "AAPL")

        assert response.status_code == 200, response.json
        jobs()
        assert [o["status"] for o in orders_of(db, response.json["sent"][0]["signal_id"])] == ["filled"]
        assert position(db, config["id"], "AAPL") == 0

    def test_a_symbol_with_nothing_held_or_working_is_404_no_position(self, client, auth_headers, db):
        config = create(client, auth_headers)

        response = close(client, auth_headers, config, "AAPL")

        assert (response.status_code, response.json["code"]) == (404, "no_position")
        assert "AAPL" in response.json["message"]
        assert signals_of(db, config["id"]) == []

    def test_a_paper_position_without_any_price_is_409_no_market_price_and_nothing_is_sent(
        self, client, auth_headers, db, jobs
    ):
        config = create(client, auth_headers)
        buy(client, config, "AAPL", 1, 100)
        buy(client, config, "MSFT", 1, 300)
        jobs()
        with db.transaction() as conn:
            conn.execute(
                "update public.positions set last_price = null where config_id = %s and symbol = 'MSFT'",
                (config["id"],),
            )
        before = len(signals_of(db, config["id"]))

        response = flatten(client, auth_headers, config)

        assert (response.status_code, response.json["code"]) == (409, "no_market_price")
        assert response.json["errors"] == {"symbols": ["MSFT"]}
        assert "MSFT" in response.json["message"]
        assert len(signals_of(db, config["id"])) == before  # not even AAPL's exit
        assert close(client, auth_headers, config, "AAPL").status_code == 200  # AAPL has a price


class TestFlatten:
    def test_closes_every_position_and_cancels_working_orders(self, client, auth_headers, db, jobs):
        config = create(client, auth_headers)
        buy(client, config, "AAPL", 2, 100)
        send(client, config, {"ticker": "MSFT", "action": "sell", "quantity": 3, "price": 300})  # a short
        resting = send(
            client,
            config,
            {
                "ticker": "TSLA",
                "action": "buy",
                "quantity": 1,
                "orderType": "limit",
                "limitPrice": 1,
                "price": 200,
            },
        )
        jobs()
        assert [o["status"] for o in orders_of(db, resting)] == ["accepted"]

        response = flatten(client, auth_headers, config)

        assert response.status_code == 200, response.json
        sent = {s["symbol"]: s for s in response.json["sent"]}
        assert {k: (s["action"], s["status"], s["side"], s["qty"]) for k, s in sent.items()} == {
            "AAPL": ("exit", "accepted", "sell", "2"),
            "MSFT": ("exit", "accepted", "buy", "3"),
            "TSLA": ("cancel", "accepted", None, None),
        }
        assert sent["TSLA"]["open_orders"] == 1
        sources = {
            r["ticker"]: r["source"]
            for r in signals_of(db, config["id"])
            if r["action"] in ("exit", "cancel")
        }
        assert sources == {"AAPL": "manual", "MSFT": "manual", "TSLA": "manual"}
        jobs()
        assert (position(db, config["id"], "AAPL"), position(db, config["id"], "MSFT")) == (0, 0)
        assert [o["status"] for o in orders_of(db, resting)] == ["canceled"]
        assert [(o["side"], o["qty"], o["status"]) for o in orders_of(db, sent["MSFT"]["signal_id"])] == [
            ("buy", Decimal(3), "filled")
        ]

    def test_a_second_flatten_while_the_first_is_working_sends_nothing_new(
        self, client, auth_headers, db, jobs
    ):
        config = create(client, auth_headers)
        buy(client, config, "AAPL", 4, 100)
        jobs()

        first = flatten(client, auth_headers, config).json
        second = flatten(client, auth_headers, config).json  # the first's job has not run yet

        [sent] = second["sent"]
        assert (sent["status"], sent["signal_id"]) == ("already_closing", first["sent"][0]["signal_id"])
        jobs()
        third = flatten(client, auth_headers, config).json  # flat now: nothing to send
        assert third["sent"] == []
        with db.transaction() as conn:
            sells = conn.execute(
                "select count(*) as n, sum(filled_qty) as qty from public.orders "
                "where config_id = %s and side = 'sell'",
                (config["id"],),
            ).fetchone()
        assert (sells["n"], sells["qty"]) == (1, Decimal(4))  # sold once, never short
        assert position(db, config["id"], "AAPL") == 0

    def test_an_exit_alert_while_flat_after_a_flatten_is_ignored(self, client, auth_headers, db, jobs):
        config = create(client, auth_headers)
        buy(client, config, "AAPL", 1, 100)
        jobs()
        flatten(client, auth_headers, config)
        late_exit = send(client, config, {"ticker": "AAPL", "action": "exit", "price": 101})
        jobs()
        assert orders_of(db, late_exit) == []
        assert [r["status"] for r in signals_of(db, config["id"]) if str(r["id"]) == late_exit] == ["ignored"]

    def test_the_same_idempotency_key_replays_the_answer_and_sends_once(self, client, auth_headers, db, jobs):
        config = create(client, auth_headers)
        buy(client, config, "AAPL", 1, 100)
        jobs()
        headers = {**auth_headers, "Idempotency-Key": f"panic-{uuid.uuid4()}"}

        first = flatten(client, headers, config)
        again = flatten(client, headers, config)

        assert again.headers.get("Idempotent-Replayed") == "true"
        assert again.json == first.json
        manual = [r for r in signals_of(db, config["id"]) if r["source"] == "manual"]
        assert len(manual) == 1

    def test_live_alpaca_keys_need_confirm_live(self, client, auth_headers, db):
        from fakes.alpaca_api import KEY_ID, SECRET_KEY, FakeAlpacaApi

        with db.transaction() as conn:
            conn.execute("delete from private.broker_credentials")
        api = FakeAlpacaApi(auto_fill=False)
        with api.running():
            config = create(client, auth_headers, broker="alpaca")
            stored = client.put(
                f"/api/webhook-configs/{config['id']}/alpaca-credentials",
                json={"key_id": KEY_ID, "secret_key": SECRET_KEY, "live": True},
                headers=auth_headers,
            )
            assert stored.status_code == 200, stored.json
            try:
                refused = flatten(client, auth_headers, config)
                everything = client.post("/api/flatten", json={}, headers=auth_headers)
                confirmed = flatten(client, auth_headers, config, confirm_live=True)
            finally:
                with db.transaction() as conn:
                    conn.execute("delete from private.broker_credentials")

        assert (refused.status_code, refused.json["code"]) == (409, "live_flatten")
        assert "real-money" in refused.json["message"]
        assert (everything.status_code, everything.json["code"]) == (409, "live_flatten")
        assert (confirmed.status_code, confirmed.json["sent"]) == (200, [])


class TestFlattenAll:
    def test_flattens_every_config_of_the_user(self, client, make_user, db, jobs):
        _, token = make_user()
        headers = {"Authorization": f"Bearer {token}"}
        one, two = create(client, headers), create(client, headers)
        buy(client, one, "AAPL", 1, 100)
        buy(client, two, "MSFT", 2, 300)
        jobs()

        response = client.post("/api/flatten", json={}, headers=headers)

        assert response.status_code == 200, response.json
        answer = {
            c["config_id"]: [(s["symbol"], s["action"], s["qty"]) for s in c["sent"]]
            for c in response.json["configs"]
        }
        assert answer == {one["id"]: [("AAPL", "exit", "1")], two["id"]: [("MSFT", "exit", "2")]}
        jobs()
        assert (position(db, one["id"], "AAPL"), position(db, two["id"], "MSFT")) == (0, 0)

    def test_is_all_or_nothing_when_one_config_has_no_price(self, client, make_user, db, jobs):
        _, token = make_user()
        headers = {"Authorization": f"Bearer {token}"}
        one, two = create(client, headers), create(client, headers)
        buy(client, one, "AAPL", 1, 100)
        buy(client, two, "MSFT", 2, 300)
        jobs()
        with db.transaction() as conn:
            conn.execute("update public.positions set last_price = null where config_id = %s", (two["id"],))

        response = client.post("/api/flatten", json={}, headers=headers)

        assert (response.status_code, response.json["code"]) == (409, "no_market_price")
        assert response.json["errors"] == {"symbols": ["MSFT"]}
        for config in (one, two):  # not even the first config's exit
            assert [r for r in signals_of(db, config["id"]) if r["source"] == "manual"] == []


class TestOtherUsers:
    def test_another_users_token_finds_nothing_and_sends_nothing(self, client, make_user, db, jobs):
        _, token_a = make_user()
        _, token_b = make_user()
        a, b = {"Authorization": f"Bearer {token_a}"}, {"Authorization": f"Bearer {token_b}"}
        config = create(client, a)
        buy(client, config, "AAPL", 1, 100)
        jobs()
        before = signals_of(db, config["id"])

        closed = close(client, b, config, "AAPL")
        flattened = flatten(client, b, config)
        everything = client.post("/api/flatten", json={}, headers=b)

        assert (closed.status_code, closed.json["code"]) == (404, "not_found")
        assert (flattened.status_code, flattened.json["code"]) == (404, "not_found")
        assert (everything.status_code, everything.json) == (200, {"configs": []})
        assert signals_of(db, config["id"]) == before
        assert position(db, config["id"], "AAPL") == 1


class TestTradingWindowSettings:
    URL = "/api/webhook-configs/{}"

    def test_are_none_by_default_and_stored_normalised(self, client, auth_headers):
        config = create(client, auth_headers)
        assert config["trading_windows"] is None
        windows = {
            "calendar": "XNYS",
            "entry_windows": [{"start": "09:30", "end": "15:45"}],
            "flatten_at": "15:55",
        }

        patched = client.patch(
            self.URL.format(config["id"]), json={"trading_windows": windows}, headers=auth_headers
        )

        assert patched.status_code == 200, patched.json
        assert patched.json["trading_windows"] == {
            **windows,
            "timezone": "America/New_York",
            "cancel_at_window_end": False,
        }
        cleared = client.patch(
            self.URL.format(config["id"]), json={"trading_windows": None}, headers=auth_headers
        )
        assert cleared.json["trading_windows"] is None

    @pytest.mark.parametrize(
        ("windows", "code", "field"),
        [
            ({"calendar": "NOPE"}, "unknown_calendar", "calendar"),
            ({"calendar": "XNYS", "timezone": "Mars/Olympus"}, "unknown_time_zone", "timezone"),
            (
                {"calendar": "XNYS", "entry_windows": [{"start": "15:45", "end": "09:30"}]},
                "window_ends_before_start",
                "entry_windows.0.end",
            ),
            (
                {
                    "calendar": "24/7",
                    "entry_windows": [{"start": "08:00", "end": "12:00"}, {"start": "11:00", "end": "13:00"}],
                },
                "windows_overlap",
                "entry_windows.1",
            ),
        ],
    )
    def test_unusable_windows_are_422_with_a_code_and_the_field(
        self, client, auth_headers, windows, code, field
    ):
        config = create(client, auth_headers)

        response = client.patch(
            self.URL.format(config["id"]), json={"trading_windows": windows}, headers=auth_headers
        )
        created = client.post(
            "/api/webhook-configs", json={"name": "w", "trading_windows": windows}, headers=auth_headers
        )

        for answer in (response, created):
            assert (answer.status_code, answer.json["code"]) == (422, code)
            assert field in answer.json["errors"]["json"]["trading_windows"]
        assert client.get(self.URL.format(config["id"]), headers=auth_headers).json["trading_windows"] is None

    @pytest.mark.parametrize(
        ("windows", "code", "field"),
        [
            # ZoneInfo raised IsADirectoryError / other OSErrors here: a 500 once.
            ({"calendar": "XNYS", "timezone": "America"}, "unknown_time_zone", "timezone"),
            ({"calendar": "24/7", "timezone": "Etc"}, "unknown_time_zone", "timezone"),
            ({"calendar": "XNYS", "timezone": "../../../etc/passwd"}, "unknown_time_zone", "timezone"),
            ({"calendar": "XNYS", "timezone": "zone.tab"}, "unknown_time_zone", "timezone"),
            # Wrong types: refused by the schema.
            (
                {"calendar": "24/7", "entry_windows": [1], "flatten_at": "10:00"},
                "validation_error",
                "entry_windows",
            ),
            ({"calendar": "24/7", "entry_windows": "09:30-15:45"}, "validation_error", "entry_windows"),
            (
                {"calendar": "24/7", "entry_windows": [{"start": 930, "end": "10:00"}]},
                "validation_error",
                "entry_windows",
            ),
            ({"calendar": 5}, "validation_error", "calendar"),
            ({"calendar": "24/7", "flatten_at": 1555}, "validation_error", "flatten_at"),
            (
                {"calendar": "24/7", "cancel_at_window_end": "maybe"},
                "validation_error",
                "cancel_at_window_end",
            ),
            ({"timezone": "UTC"}, "validation_error", "calendar"),
        ],
    )
    def test_malformed_windows_are_422_never_500(self, client, auth_headers, windows, code, field):
        config = create(client, auth_headers)

        patched = client.patch(
            self.URL.format(config["id"]), json={"trading_windows": windows}, headers=auth_headers
        )
        created = client.post(
            "/api/webhook-configs", json={"name": "w", "trading_windows": windows}, headers=auth_headers
        )

        for answer in (patched, created):
            assert (answer.status_code, answer.json["code"]) == (422, code), answer.json
            assert field in answer.json["errors"]["json"]["trading_windows"], answer.json
            assert answer.json["message"]
        assert client.get(self.URL.format(config["id"]), headers=auth_headers).json["trading_windows"] is None

    @pytest.mark.parametrize("windows", ["XNYS", ["XNYS"], 5])
    def test_windows_that_are_not_an_object_are_422(self, client, auth_headers, windows):
        config = create(client, auth_headers)
        response = client.patch(
            self.URL.format(config["id"]), json={"trading_windows": windows}, headers=auth_headers
        )
        assert (response.status_code, response.json["code"]) == (422, "validation_error")
        assert "trading_windows" in response.json["errors"]["json"]

    def test_a_malformed_time_is_422_from_the_schema(self, client, auth_headers):
        config = create(client, auth_headers)
        response = client.patch(
            self.URL.format(config["id"]),
            json={"trading_windows": {"calendar": "XNYS", "flatten_at": "3pm"}},
            headers=auth_headers,
        )
        assert response.status_code == 422
        assert "flatten_at" in response.json["errors"]["json"]["trading_windows"]


def test_a_crypto_position_closes_by_either_spelling(client, auth_headers, db, jobs):
    config = create(client, auth_headers)
    buy(client, config, "BTCUSD", "0.5", 40000)
    jobs()

    response = close(client, auth_headers, config, "BTCUSD")

    assert response.status_code == 200, response.json
    [sent] = response.json["sent"]
    assert (sent["symbol"], sent["action"], sent["side"]) == ("BTC/USD", "exit", "sell")
    jobs()
    assert position(db, config["id"], "BTC/USD") == 0
    assert close(client, auth_headers, config, "BTC/USD").json["code"] == "no_position"


def test_system_code_flattens_without_a_caller_and_names_its_source(app, client, auth_headers, db, jobs):
    from viewzenix.services.flatten import flatten_config

    config = create(client, auth_headers)
    buy(client, config, "AAPL", 2, 100)
    jobs()

    result = flatten_config(
        db, app.extensions["viewzenix"].jobs, uuid.UUID(config["id"]), source="loss_limit"
    ).as_dict()

    assert [(s["symbol"], s["action"], s["qty"]) for s in result["sent"]] == [("AAPL", "exit", Decimal(2))]
    assert result["source"] == "loss_limit"
    assert [r["source"] for r in signals_of(db, config["id"]) if r["action"] == "exit"] == ["loss_limit"]
    jobs()
    assert position(db, config["id"], "AAPL") == 0
