"""Source allowlist and symbol mapping per webhook config (issue 17 items 6-7).

Allowlist: an alert from an address outside the config's networks is stored rejected with
``source_not_allowed`` (403) and runs nothing; ``X-Forwarded-For`` counts only through
TRUSTED_PROXY_COUNT proxies. Mapping: the alert's ticker becomes the broker symbol before the
signal is stored, so the job's lock and the engine see it; the alert's ticker is kept.
"""

from __future__ import annotations

import json
import uuid

import pytest

from viewzenix.domain.sources import TRADINGVIEW_ADDRESSES
from viewzenix.webhooks import limits

pytestmark = pytest.mark.db

TRADINGVIEW = "52.89.214.238"
OTHER = "203.0.113.8"
ALERT = '{"ticker": "BTCUSDT", "action": "buy", "quantity": 1, "price": 100}'


@pytest.fixture()
def config(client, auth_headers):
    data = client.post("/api/webhook-configs", json={"name": "routing"}, headers=auth_headers).json
    return {**data, "url": f"/webhooks/{data['id']}/{data['token']}"}


def post(client, url, address, body=ALERT, **kwargs):
    return client.post(
        url, data=body, content_type="application/json", environ_base={"REMOTE_ADDR": address}, **kwargs
    )


def put_allowlist(client, headers, config_id, **body):
    return client.put(f"/api/webhook-configs/{config_id}/source-allowlist", json=body, headers=headers)


def stored(db, signal_id):
    with db.transaction() as conn:
        return conn.execute("select * from public.signals where id = %s", (signal_id,)).fetchone()


def test_tradingview_constants_agree():
    assert TRADINGVIEW_ADDRESSES == limits.TRADINGVIEW_ADDRESSES


class TestAllowlist:
    def test_no_allowlist_by_default_any_address_is_accepted(self, client, auth_headers, config):
        got = client.get(f"/api/webhook-configs/{config['id']}/source-allowlist", headers=auth_headers).json
        assert got["allowed_source_ips"] is None
        assert sorted(got["tradingview_addresses"]) == sorted(TRADINGVIEW_ADDRESSES)
        assert post(client, config["url"], OTHER).json["status"] == "accepted"

    def test_the_tradingview_preset_sets_the_four_addresses(self, client, auth_headers, config):
        response = put_allowlist(client, auth_headers, config["id"], preset="tradingview")
        assert response.status_code == 200
        assert sorted(response.json["allowed_source_ips"]) == sorted(f"{a}/32" for a in TRADINGVIEW_ADDRESSES)

    def test_a_refused_source_is_stored_with_its_reason_and_runs_nothing(
        self, client, auth_headers, config, db
    ):
        put_allowlist(client, auth_headers, config["id"], preset="tradingview")
        refused = post(client, config["url"], OTHER)
        assert refused.status_code == 403
        assert refused.json["code"] == "source_not_allowed" and refused.json["status"] == 403
        row = stored(db, refused.json["signal_id"])
        assert (row["status"], row["reject_code"], str(row["source_ip"])) == (
            "rejected",
            "source_not_allowed",
            OTHER,
        )
        assert row["job_id"] is None and row["signal"] is None
        # The same alert from TradingView is fresh: the refusal claimed no dedupe key.
        accepted = post(client, config["url"], TRADINGVIEW)
        assert accepted.status_code == 200 and accepted.json["status"] == "accepted"
        assert stored(db, accepted.json["signal_id"])["job_id"] is not None

    def test_an_unparseable_alert_from_a_refused_source_is_refused_for_its_source(
        self, client, auth_headers, config, db
    ):
        put_allowlist(client, auth_headers, config["id"], allowed_source_ips=["10.0.0.0/8"])
        refused = post(client, config["url"], OTHER, body="not json at all {")
        assert refused.status_code == 403 and refused.json["code"] == "source_not_allowed"
        assert stored(db, refused.json["signal_id"])["reject_code"] == "source_not_allowed"
        inside = post(client, config["url"], "10.1.2.3", body="not json at all {")
        assert inside.json["code"] != "source_not_allowed"

    def test_a_cidr_network_admits_its_addresses(self, client, auth_headers, config):
        response = put_allowlist(
            client, auth_headers, config["id"], allowed_source_ips=["10.0.0.0/8", "2001:db8::1"]
        )
        assert response.json["allowed_source_ips"] == ["10.0.0.0/8", "2001:db8::1/128"]
        assert post(client, config["url"], "10.200.3.4").status_code == 200
        assert post(client, config["url"], "11.0.0.1").json["code"] == "source_not_allowed"

    def test_null_turns_the_allowlist_off(self, client, auth_headers, config):
        put_allowlist(client, auth_headers, config["id"], preset="tradingview")
        assert (
            put_allowlist(client, auth_headers, config["id"], allowed_source_ips=None).json[
                "allowed_source_ips"
            ]
            is None
        )
        assert post(client, config["url"], OTHER).status_code == 200

    @pytest.mark.parametrize("bad", ["10.0.0.0/33", "10.0.0.1/8", "not-an-ip", "", "300.1.1.1"])
    def test_a_bad_network_is_422_with_code_and_field(self, client, auth_headers, config, bad):
        response = put_allowlist(client, auth_headers, config["id"], allowed_source_ips=["10.0.0.0/8", bad])
        assert response.status_code == 422
        assert response.json["code"] == "invalid_source_network"
        assert "allowed_source_ips" in response.json["errors"]
        got = client.get(f"/api/webhook-configs/{config['id']}/source-allowlist", headers=auth_headers).json
        assert got["allowed_source_ips"] is None  # nothing changed

    def test_x_forwarded_for_is_ignored_without_trusted_proxies(self, app, client, auth_headers, config):
        put_allowlist(client, auth_headers, config["id"], preset="tradingview")
        spoofed = post(client, config["url"], OTHER, headers={"X-Forwarded-For": TRADINGVIEW})
        assert spoofed.status_code == 403 and spoofed.json["code"] == "source_not_allowed"

    def test_behind_a_trusted_proxy_the_forwarded_address_counts(
        self, app, client, auth_headers, config, monkeypatch
    ):
        from werkzeug.middleware.proxy_fix import ProxyFix

        put_allowlist(client, auth_headers, config["id"], preset="tradingview")
        monkeypatch.setattr(app, "wsgi_app", ProxyFix(app.wsgi_app, x_for=1))
        ok = post(client, config["url"], "10.0.0.1", headers={"X-Forwarded-For": f"{OTHER}, {TRADINGVIEW}"})
        assert ok.status_code == 200
        spoofed = post(
            client,
            config["url"],
            "10.0.0.1",
            body=ALERT.replace("100", "101"),
            headers={"X-Forwarded-For": f"{TRADINGVIEW}, {OTHER}"},
        )
        assert spoofed.status_code == 403 and spoofed.json["code"] == "source_not_allowed"

    def test_another_user_cannot_read_or_set_the_allowlist(self, client, auth_headers, config, make_user):
        _, token = make_user()
        other = {"Authorization": f"Bearer {token}"}
        assert (
            client.get(f"/api/webhook-configs/{config['id']}/source-allowlist", headers=other).status_code
            == 404
        )
        assert put_allowlist(client, other, config["id"], preset="tradingview").status_code == 404
        got = client.get(f"/api/webhook-configs/{config['id']}/source-allowlist", headers=auth_headers).json
        assert got["allowed_source_ips"] is None


def put_mappings(client, headers, config_id, mappings):
    return client.put(
        f"/api/webhook-configs/{config_id}/symbol-mappings", json={"mappings": mappings}, headers=headers
    )


class TestSymbolMapping:
    def test_the_mapped_symbol_is_stored_and_the_alert_ticker_kept(self, client, auth_headers, config, db):
        response = put_mappings(
            client, auth_headers, config["id"], [{"alert_ticker": "btcusdt", "broker_symbol": "BTC/USD"}]
        )
        assert response.status_code == 200
        assert [(m["alert_ticker"], m["broker_symbol"]) for m in response.json["mappings"]] == [
            ("BTC/USDT", "BTC/USD")  # canonical spelling: BTCUSDT and BTC-USDT alerts both match
        ]
        answer = post(client, config["url"], OTHER)
        assert answer.status_code == 200 and answer.json["ticker"] == "BTC/USD"
        row = stored(db, answer.json["signal_id"])
        assert (row["ticker"], row["alert_ticker"], row["signal"]["ticker"]) == (
            "BTC/USD",
            "BTCUSDT",
            "BTC/USD",
        )
        with db.transaction() as conn:
            lock = conn.execute(
                "select lock from procrastinate_jobs where id = %s", (row["job_id"],)
            ).fetchone()
        assert lock["lock"] == f"signal:{config['id']}:BTC/USD"
        detail = client.get(f"/api/signals/{row['id']}", headers=auth_headers).json
        assert (detail["ticker"], detail["alert_ticker"], detail["signal"]["ticker"]) == (
            "BTC/USD",
            "BTCUSDT",
            "BTC/USD",
        )

    def test_another_spelling_of_the_pair_maps_too(self, client, auth_headers, config, db):
        put_mappings(
            client, auth_headers, config["id"], [{"alert_ticker": "BTCUSDT", "broker_symbol": "BTC/USD"}]
        )
        answer = post(client, config["url"], OTHER, body=ALERT.replace("BTCUSDT", "BINANCE:BTC-USDT"))
        assert stored(db, answer.json["signal_id"])["ticker"] == "BTC/USD"

    def test_an_unmapped_ticker_is_left_alone(self, client, auth_headers, config, db):
        put_mappings(
            client, auth_headers, config["id"], [{"alert_ticker": "ES1!", "broker_symbol": "ESZ2026"}]
        )
        row = stored(db, post(client, config["url"], OTHER).json["signal_id"])
        assert (row["ticker"], row["alert_ticker"]) == ("BTCUSDT", None)
        mapped = post(client, config["url"], OTHER, body=ALERT.replace("BTCUSDT", "ES1!"))
        row = stored(db, mapped.json["signal_id"])
        assert (row["ticker"], row["alert_ticker"]) == ("ESZ2026", "ES1!")

    def test_the_engine_trades_the_broker_symbol(self, client, auth_headers, config, jobs):
        put_mappings(client, auth_headers, config["id"], [{"alert_ticker": "GOOGL", "broker_symbol": "GOOG"}])
        answer = post(
            client,
            config["url"],
            OTHER,
            body='{"ticker": "GOOGL", "action": "buy", "quantity": 2, "price": 10}',
        )
        jobs()
        detail = client.get(f"/api/signals/{answer.json['signal_id']}", headers=auth_headers).json
        assert detail["status"] == "executed"
        assert [(o["symbol"], o["qty"]) for o in detail["orders"]] == [("GOOG", "2")]

    def test_a_test_alert_is_mapped_too(self, client, auth_headers, config, db):
        put_mappings(
            client, auth_headers, config["id"], [{"alert_ticker": "AAPL", "broker_symbol": "AAPL.US"}]
        )
        result = client.post(
            f"/api/webhook-configs/{config['id']}/test-alert", json={}, headers=auth_headers
        ).json
        row = stored(db, result["signal_id"])
        assert (row["ticker"], row["alert_ticker"]) == ("AAPL.US", "AAPL")

    @pytest.mark.parametrize(
        ("item", "code", "field"),
        [
            ({"alert_ticker": "BTCUSDT", "broker_symbol": ""}, "empty_symbol", "mappings.0.broker_symbol"),
            ({"alert_ticker": "BTCUSDT", "broker_symbol": "   "}, "empty_symbol", "mappings.0.broker_symbol"),
            ({"alert_ticker": "", "broker_symbol": "BTC/USD"}, "empty_symbol", "mappings.0.alert_ticker"),
            (
                {"alert_ticker": "BTCUSDT", "broker_symbol": "BTC USD$"},
                "invalid_symbol",
                "mappings.0.broker_symbol",
            ),
            ({"alert_ticker": "A" * 33, "broker_symbol": "A"}, "invalid_symbol", "mappings.0.alert_ticker"),
        ],
    )
    def test_bad_mappings_are_422_with_code_and_field(self, client, auth_headers, config, item, code, field):
        response = put_mappings(client, auth_headers, config["id"], [item])
        assert response.status_code == 422
        assert response.json["code"] == code and field in response.json["errors"]

    def test_one_ticker_mapped_twice_is_422(self, client, auth_headers, config):
        response = put_mappings(
            client,
            auth_headers,
            config["id"],
            [
                {"alert_ticker": "BTCUSDT", "broker_symbol": "BTC/USD"},
                {"alert_ticker": "BTC-USDT", "broker_symbol": "X"},
            ],
        )
        assert response.status_code == 422 and response.json["code"] == "duplicate_mapping"
        assert "mappings.1.alert_ticker" in response.json["errors"]

    def test_another_user_cannot_read_or_edit_the_mappings(self, client, auth_headers, config, make_user, db):
        put_mappings(
            client, auth_headers, config["id"], [{"alert_ticker": "AAPL", "broker_symbol": "AAPL.US"}]
        )
        _, token = make_user()
        other = {"Authorization": f"Bearer {token}"}
        assert (
            client.get(f"/api/webhook-configs/{config['id']}/symbol-mappings", headers=other).status_code
            == 404
        )
        assert put_mappings(client, other, config["id"], []).status_code == 404
        mine = client.get(f"/api/webhook-configs/{config['id']}/symbol-mappings", headers=auth_headers).json
        assert [m["alert_ticker"] for m in mine["mappings"]] == ["AAPL"]

    def test_rls_hides_mappings_from_another_user_in_sql(self, client, auth_headers, config, make_user, db):
        put_mappings(
            client, auth_headers, config["id"], [{"alert_ticker": "AAPL", "broker_symbol": "AAPL.US"}]
        )
        other_id, _ = make_user()
        claims = {"sub": str(other_id), "role": "authenticated", "aud": "authenticated"}
        with db.transaction(claims) as conn:
            assert conn.execute("select count(*) as n from public.symbol_mappings").fetchone()["n"] == 0
            deleted = conn.execute("delete from public.symbol_mappings where config_id = %s", (config["id"],))
            assert deleted.rowcount == 0
            import psycopg

            with pytest.raises(psycopg.errors.Error):
                with conn.transaction():
                    conn.execute(
                        "insert into public.symbol_mappings "
                        "(config_id, user_id, alert_ticker, broker_symbol) values (%s, %s, 'MSFT', 'X')",
                        (config["id"], other_id),
                    )


def test_a_32_character_pair_longer_once_canonical_is_stored(client, auth_headers, config, db):
    """A 32-character ticker such as ``A…AUSD`` becomes 33 characters as ``A…A/USD``: no 5xx."""
    ticker = "A" * 29 + "USD"
    response = put_mappings(
        client, auth_headers, config["id"], [{"alert_ticker": ticker, "broker_symbol": ticker}]
    )
    assert response.status_code == 200
    assert response.json["mappings"][0]["alert_ticker"] == "A" * 29 + "/USD"
    answer = post(client, config["url"], OTHER, body=ALERT.replace("BTCUSDT", ticker))
    assert stored(db, answer.json["signal_id"])["ticker"] == "A" * 29 + "/USD"


def bar(ticker: str, time: str, o: str, h: str, low: str, c: str) -> str:
    return json.dumps(
        {
            "type": "bar",
            "ticker": ticker,
            "interval": "1",
            "time": time,
            "open": o,
            "high": h,
            "low": low,
            "close": c,
        }
    )


def bars_of(db, config_id) -> list[dict]:
    with db.transaction() as conn:
        return conn.execute(
            "select status, reject_code, symbol, source_ip, job_id, raw_body from public.bars"
            " where config_id = %s order by received_at, id",
            (config_id,),
        ).fetchall()


def lock_of(db, job_id) -> str:
    with db.transaction() as conn:
        return conn.execute("select lock from procrastinate_jobs where id = %s", (job_id,)).fetchone()["lock"]


@pytest.fixture()
def paper(client, auth_headers):
    data = client.post(
        "/api/webhook-configs", json={"name": "routing bars", "starting_cash": "100000"}, headers=auth_headers
    ).json
    return {**data, "url": f"/webhooks/{data['id']}/{data['token']}"}


class TestBarMessages:
    """Bars move marks and fill paper orders: held to the allowlist and mapped like alerts."""

    def test_a_bar_from_outside_the_allowlist_is_refused_stored_and_applies_nothing(
        self, client, auth_headers, paper, db, jobs
    ):
        put_allowlist(client, auth_headers, paper["id"], allowed_source_ips=["10.0.0.0/8"])
        body = bar("AAPL", "2026-11-23T15:00:00Z", "100", "101", "99", "100.5")

        refused = post(client, paper["url"], OTHER, body=body)

        assert refused.status_code == 403
        assert (refused.json["code"], refused.json["status"]) == ("source_not_allowed", 403)
        rows = bars_of(db, paper["id"])
        assert [(r["status"], r["reject_code"], str(r["source_ip"]), r["job_id"]) for r in rows] == [
            ("rejected", "source_not_allowed", OTHER, None)
        ]
        # Refused whatever the body says (as an alert is): a wrong sender learns nothing of it.
        assert post(client, paper["url"], OTHER, body='{"type": "bar"}').json["code"] == "source_not_allowed"
        # The same bar from inside the list is new (the refusal took no slot) and is applied.
        accepted = post(client, paper["url"], "10.1.2.3", body=body)
        assert accepted.status_code == 200 and accepted.json["status"] == "accepted"
        jobs()
        assert [r["status"] for r in bars_of(db, paper["id"])] == ["rejected", "rejected", "applied"]

    def test_a_mapped_bar_fills_the_broker_symbols_resting_order_under_its_lock(
        self, client, auth_headers, paper, db, jobs
    ):
        put_mappings(
            client, auth_headers, paper["id"], [{"alert_ticker": "BTCUSDT", "broker_symbol": "BTC/USD"}]
        )
        alert = post(
            client,
            paper["url"],
            OTHER,
            body=json.dumps(
                {
                    "ticker": "BTCUSDT",
                    "action": "buy",
                    "quantity": 1,
                    "orderType": "limit",
                    "limitPrice": 90,
                    "price": 100,
                }
            ),
        ).json
        alert_lock = lock_of(db, stored(db, alert["signal_id"])["job_id"])
        jobs()
        orders = client.get(f"/api/orders?config_id={paper['id']}", headers=auth_headers).json
        assert [(o["symbol"], o["status"]) for o in orders] == [("BTC/USD", "accepted")]  # resting

        answer = post(
            client, paper["url"], OTHER, body=bar("BTCUSDT", "2026-11-23T15:00:00Z", "95", "96", "89", "91")
        )

        assert answer.status_code == 200, answer.json
        assert (answer.json["status"], answer.json["ticker"], answer.json["alert_ticker"]) == (
            "accepted",
            "BTC/USD",
            "BTC/USDT",
        )
        [row] = bars_of(db, paper["id"])
        assert row["symbol"] == "BTC/USD" and '"BTCUSDT"' in row["raw_body"]  # the body as sent
        assert lock_of(db, row["job_id"]) == alert_lock == f"signal:{paper['id']}:BTC/USD"
        jobs()
        orders = client.get(f"/api/orders?config_id={paper['id']}", headers=auth_headers).json
        assert [(o["symbol"], o["status"], o["filled_avg_price"]) for o in orders] == [
            ("BTC/USD", "filled", "90")
        ]
        positions = client.get(f"/api/positions?config_id={paper['id']}", headers=auth_headers).json
        # Marked at the bar's close (qty: 1 less the paper crypto fee, taken in BTC).
        assert [(p["symbol"], p["last_price"]) for p in positions] == [("BTC/USD", "91")]
        assert 0 < float(positions[0]["qty"]) <= 1
        # Duplicates and order are judged under the broker symbol: BTCUSD is the same bar.
        again = post(
            client, paper["url"], OTHER, body=bar("BTCUSD", "2026-11-23T15:00:00Z", "95", "96", "89", "91")
        )
        assert (again.json["status"], again.json["bar_id"]) == ("duplicate", answer.json["bar_id"])
        assert "alert_ticker" not in again.json  # BTC/USD itself is not mapped

    def test_an_unmapped_bar_keeps_its_symbol(self, client, auth_headers, paper, db):
        put_mappings(
            client, auth_headers, paper["id"], [{"alert_ticker": "ES1!", "broker_symbol": "ESZ2026"}]
        )
        answer = post(
            client, paper["url"], OTHER, body=bar("AAPL", "2026-11-23T15:00:00Z", "1", "1", "1", "1")
        )
        assert answer.json["ticker"] == "AAPL" and "alert_ticker" not in answer.json
        assert [r["symbol"] for r in bars_of(db, paper["id"])] == ["AAPL"]


@pytest.fixture()
def single_tenant_allowlist(client, db):
    """The single-tenant default config with an allowlist of 10.0.0.0/8, reset afterwards."""
    from viewzenix.services.single_tenant import DEFAULT_CONFIG_ID

    client.post("/webhook", json={"ticker": "SPY", "action": "buy"})  # creates the default config
    with db.transaction() as conn:
        conn.execute(
            "update public.webhook_configs set allowed_source_ips = '{10.0.0.0/8}' where id = %s",
            (DEFAULT_CONFIG_ID,),
        )
    yield
    with db.transaction() as conn:
        conn.execute(
            "update public.webhook_configs set allowed_source_ips = null where id = %s", (DEFAULT_CONFIG_ID,)
        )


class TestSingleTenant:
    def test_the_default_configs_allowlist_refuses_the_right_passphrase_from_elsewhere(
        self, client, db, single_tenant_allowlist
    ):
        body = json.dumps(
            {
                "passphrase": "test-passphrase",
                "ticker": "SPY",
                "action": "buy",
                "price": uuid.uuid4().int % 10**6 + 1,
            }
        )

        refused = post(client, "/webhook", OTHER, body=body)

        assert refused.status_code == 403, refused.json
        assert (refused.json["code"], refused.json["status"]) == ("source_not_allowed", 403)
        row = stored(db, refused.json["signal_id"])
        assert (row["status"], row["reject_code"], str(row["source_ip"]), row["job_id"]) == (
            "rejected",
            "source_not_allowed",
            OTHER,
            None,
        )
        assert "test-passphrase" not in row["raw_body"]
        # A wrong passphrase is 401 wherever it comes from (the allowlist is not revealed).
        wrong = post(client, "/webhook", OTHER, body=body.replace("test-passphrase", "guess"))
        assert (wrong.status_code, wrong.json["code"]) == (401, "invalid_passphrase")
        # The same alert from inside the list is new: the refusal claimed no duplicate key.
        accepted = post(client, "/webhook", "10.1.2.3", body=body)
        assert accepted.status_code == 200 and accepted.json["status"] == "accepted", accepted.json
        assert stored(db, accepted.json["signal_id"])["job_id"] is not None
