"""Bars pushed by TradingView on a config's webhook URL: answered, stored, applied in order.

Over HTTP (the Flask test client), the worker run in-process (``jobs``), our books read back
through the REST API. A bar is applied under the symbol's signal lock, so an alert after a bar
sees it and a bar after an alert works the orders it left resting.
"""

from __future__ import annotations

import json
import re
import uuid
from decimal import Decimal

import pytest

from viewzenix.brokers import broker_for
from viewzenix.brokers.base import BrokerUnavailable
from viewzenix.services.bars import apply_bar
from viewzenix.services.execution import execute_signal

pytestmark = pytest.mark.db


def bar_body(
    time: str, o: str, h: str, low: str, c: str, *, ticker: str = "AAPL", interval: str = "1", **extra
):
    return json.dumps(
        {
            "type": "bar",
            "ticker": ticker,
            "interval": interval,
            "time": time,
            "open": o,
            "high": h,
            "low": low,
            "close": c,
            "volume": "1200",
            **extra,
        }
    )


@pytest.fixture()
def config(client, auth_headers):
    data = client.post(
        "/api/webhook-configs", json={"name": "bars", "starting_cash": "100000"}, headers=auth_headers
    ).json
    return {**data, "headers": auth_headers, "url": f"/webhooks/{data['id']}/{data['token']}"}


def push(client, config, body, status=200):
    response = client.post(config["url"], data=body, content_type="application/json")
    assert response.status_code == status, response.json
    return response.json


def bars_of(db, config) -> list[dict]:
    with db.transaction() as conn:
        return conn.execute(
            "select status, reject_code, reject_message, bar_at, close from public.bars"
            " where config_id = %s order by received_at, id",
            (config["id"],),
        ).fetchall()


def fills_of(db, config) -> list[dict]:
    with db.transaction() as conn:
        return conn.execute(
            "select trade_id, last_px from public.fills where config_id = %s order by filled_at, trade_id",
            (config["id"],),
        ).fetchall()


class TestIntake:
    def test_a_bar_is_answered_200_with_what_was_recorded(self, client, config, db):
        answer = push(client, config, bar_body("2026-11-23T15:00:00Z", "100", "101", "99.5", "100.5"))

        assert answer["status"] == "accepted" and answer["duplicate"] is False
        assert (answer["ticker"], answer["interval"], answer["time"]) == ("AAPL", "1", "2026-11-23T15:00:00Z")
        assert (answer["open"], answer["high"], answer["low"], answer["close"]) == (
            "100",
            "101",
            "99.5",
            "100.5",
        )
        assert [(b["status"], b["close"]) for b in bars_of(db, config)] == [("accepted", Decimal("100.5"))]

    def test_numbers_may_be_json_numbers_and_time_epoch_milliseconds(self, client, config):
        body = json.dumps(
            {
                "type": "bar",
                "ticker": "NASDAQ:AAPL",
                "interval": "1D",
                "time": 1795446000000,
                "open": 100,
                "high": 101.25,
                "low": 99,
                "close": 100.5,
            }
        )

        answer = push(client, config, body)

        assert (answer["ticker"], answer["high"], answer["time"]) == (
            "AAPL",
            "101.25",
            "2026-11-23T15:00:00Z",
        )

    @pytest.mark.parametrize(
        ("prices", "code"),
        [
            (("100", "99", "101", "100"), "bar_high_below_low"),
            (("102", "101", "99", "100"), "bar_range_excludes_open_close"),
            (("100", "101", "99", "98"), "bar_range_excludes_open_close"),
            (("NaN", "101", "99", "100"), "bar_price_not_finite"),
            (("100", "Infinity", "99", "100"), "bar_price_not_finite"),
            (("-1", "101", "-2", "100"), "bar_price_negative"),
            (("abc", "101", "99", "100"), "bar_invalid_field"),
        ],
    )
    def test_a_bad_bar_is_422_with_its_code_and_stored_with_the_reason(
        self, client, config, db, prices, code
    ):
        answer = push(client, config, bar_body("2026-11-23T15:00:00Z", *prices), status=422)

        assert (answer["code"], answer["status"]) == (code, 422)
        stored = bars_of(db, config)
        assert [(b["status"], b["reject_code"]) for b in stored] == [("rejected", code)]
        assert stored[0]["reject_message"] == answer["message"]

    def test_an_unknown_interval_is_422(self, client, config):
        answer = push(
            client, config, bar_body("2026-11-23T15:00:00Z", "100", "101", "99", "100", interval="7X"), 422
        )

        assert answer["code"] == "bar_unknown_interval"

    def test_a_repeated_bar_is_a_duplicate_and_applied_once(self, client, config, db, jobs):
        first = push(client, config, bar_body("2026-11-23T15:00:00Z", "100", "101", "99", "100"))
        again = push(client, config, bar_body("2026-11-23T15:00:00Z", "100", "101", "99", "100"))
        jobs()

        assert again["duplicate"] is True and again["bar_id"] == first["bar_id"]
        assert [b["status"] for b in bars_of(db, config)] == ["applied", "duplicate"]

    def test_a_resent_bar_is_a_duplicate_even_after_newer_ones(self, client, config, db):
        first = push(client, config, bar_body("2026-11-23T15:00:00Z", "100", "101", "99", "100"))
        push(client, config, bar_body("2026-11-23T15:01:00Z", "100", "101", "99", "100"))

        again = push(client, config, bar_body("2026-11-23T15:00:00Z", "100", "101", "99", "100"))

        assert (again["duplicate"], again["bar_id"]) == (True, first["bar_id"])

    def test_a_bar_older_than_the_last_one_is_refused_out_of_order(self, client, config, db):
        push(client, config, bar_body("2026-11-23T15:01:00Z", "100", "101", "99", "100"))

        answer = push(client, config, bar_body("2026-11-23T15:00:00Z", "100", "101", "99", "100"), status=422)

        assert answer["code"] == "bar_out_of_order"
        assert [b["reject_code"] for b in bars_of(db, config)] == [None, "bar_out_of_order"]

    def test_a_sequence_with_a_bad_bar_answers_it_422_and_applies_the_rest(self, client, config, db, jobs):
        statuses = [
            client.post(config["url"], data=body, content_type="application/json").status_code
            for body in (
                bar_body("2026-11-23T15:00:00Z", "100", "101", "99", "100"),
                bar_body("2026-11-23T15:01:00Z", "100", "99", "101", "100"),  # high below low
                bar_body("2026-11-23T15:02:00Z", "100", "102", "99", "101.5"),
            )
        ]
        jobs()

        assert statuses == [200, 422, 200]
        assert [(b["status"], b["reject_code"]) for b in bars_of(db, config)] == [
            ("applied", None),
            ("rejected", "bar_high_below_low"),
            ("applied", None),
        ]

    def test_a_wrong_token_is_404_and_nothing_is_stored(self, client, config, db):
        response = client.post(
            f"/webhooks/{config['id']}/wrong", data=bar_body("2026-11-23T15:00:00Z", "1", "1", "1", "1")
        )

        assert response.status_code == 404
        assert bars_of(db, config) == []


def alert(action: str, **fields) -> str:
    return json.dumps({"ticker": "AAPL", "action": action, "quantity": "10", **fields})


class TestAppliedInOrderWithSignals:
    def test_a_market_alert_without_a_price_fills_at_the_last_bar_close(self, client, config, jobs):
        push(client, config, bar_body("2026-11-23T15:00:00Z", "100", "101", "99", "100.25"))
        signal = push(client, config, alert("buy"))["signal_id"]
        jobs()

        detail = client.get(f"/api/signals/{signal}", headers=config["headers"]).json
        assert detail["status"] == "executed"
        assert [(o["status"], o["filled_avg_price"]) for o in detail["orders"]] == [("filled", "100.25")]

    def test_a_bracket_entry_stop_fills_on_the_bar_that_crosses_it_without_another_alert(
        self, client, config, db, jobs
    ):
        headers = config["headers"]
        push(
            client,
            config,
            alert("buy", price="100", stopLoss={"stopPrice": "95"}, takeProfit={"limitPrice": "110"}),
        )
        jobs()
        push(client, config, bar_body("2026-11-23T15:00:00Z", "100", "102", "96", "97"))
        jobs()
        assert client.get(f"/api/positions?config_id={config['id']}", headers=headers).json[0]["qty"] == "10"

        push(client, config, bar_body("2026-11-23T15:01:00Z", "97", "98", "94", "96"))
        jobs()

        orders = client.get(f"/api/orders?config_id={config['id']}", headers=headers).json
        by_purpose = {o["purpose"]: (o["status"], o["filled_avg_price"]) for o in orders}
        assert by_purpose == {
            "entry": ("filled", "100"),
            "stop_loss": ("filled", "95"),
            "take_profit": ("canceled", None),
        }
        assert sorted(f["last_px"] for f in fills_of(db, config)) == [Decimal("95"), Decimal("100")]
        assert client.get(f"/api/positions?config_id={config['id']}", headers=headers).json == []

    def test_the_equity_series_has_one_point_per_bar_following_the_mark(self, client, config, jobs):
        push(client, config, alert("buy", price="100"))
        jobs()
        for minute, close in ((0, "101"), (1, "103")):
            push(client, config, bar_body(f"2026-11-23T15:0{minute}:00Z", "100", "104", "99", close))
        jobs()

        series = client.get(
            f"/api/webhook-configs/{config['id']}/equity-series", headers=config["headers"]
        ).json

        assert [(p["at"][:19], p["equity"]) for p in series] == [
            ("2026-11-23T15:01:00", "100010"),
            ("2026-11-23T15:02:00", "100030"),
        ]
        positions = client.get(f"/api/positions?config_id={config['id']}", headers=config["headers"]).json
        assert positions[0]["last_price"] == "103"
        assert positions[0]["last_price_at"].startswith("2026-11-23T15:02:00")  # the bar's close
        page = client.get("/ui/fragments/positions", headers=config["headers"]).get_data(as_text=True)
        assert re.search(r"103\.00 <small class=\"muted price-age\">\d+ d ago</small>", page)

    def test_another_users_equity_series_is_404(self, client, config, make_user):
        _, token = make_user()
        response = client.get(
            f"/api/webhook-configs/{config['id']}/equity-series", headers={"Authorization": f"Bearer {token}"}
        )

        assert response.status_code == 404


class TestExactlyOnce:
    def test_a_job_retried_after_the_exchange_worked_the_bar_records_its_fill_once(
        self, client, config, db, app
    ):
        push(client, config, alert("buy", price="100", stopLoss={"stopPrice": "95"}))
        with db.transaction() as conn:
            signal_id = conn.execute(
                "select id from public.signals where config_id = %s", (config["id"],)
            ).fetchone()["id"]
        execute_signal(db, signal_id)
        bar_id = uuid.UUID(
            push(client, config, bar_body("2026-11-23T15:00:00Z", "99", "99", "94", "96"))["bar_id"]
        )

        class CrashAfterBar:
            """The exchange works the bar, then the connection drops before our books record it."""

            def __init__(self, broker):
                self.broker = broker

            def process_bar(self, bar):
                self.broker.process_bar(bar)
                raise BrokerUnavailable("connection lost after the exchange worked the bar")

            def __getattr__(self, name):
                return getattr(self.broker, name)

        with pytest.raises(BrokerUnavailable):
            apply_bar(db, bar_id, brokers=lambda row: CrashAfterBar(broker_for(db, row)))
        assert [b["status"] for b in bars_of(db, config)] == ["accepted"]

        assert apply_bar(db, bar_id) == "applied"  # the retry
        assert apply_bar(db, bar_id) == "applied"  # and once more: nothing to do

        assert sorted(f["last_px"] for f in fills_of(db, config)) == [Decimal("95"), Decimal("100")]
        orders = client.get(f"/api/orders?config_id={config['id']}", headers=config["headers"]).json
        assert {o["purpose"]: o["status"] for o in orders} == {"entry": "filled", "stop_loss": "filled"}
