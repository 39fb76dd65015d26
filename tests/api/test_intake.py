"""Signal intake over HTTP: authentication by URL token or passphrase, storage of every alert
(accepted or refused, with its reason and raw body), the execution job deferred with it."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.conftest import FIXTURES

CORPUS = [
    json.loads(line)
    for line in (FIXTURES / "tradingview_alerts.jsonl").read_text().splitlines()
    if line.strip()
]


@pytest.fixture()
def config(client, auth_headers):
    data = client.post("/api/webhook-configs", json={"name": "intake"}, headers=auth_headers).json
    return {**data, "headers": auth_headers, "url": f"/webhooks/{data['id']}/{data['token']}"}


def stored(db, signal_id):
    with db.transaction() as conn:
        return conn.execute("select * from public.signals where id = %s", (signal_id,)).fetchone()


class TestAccepted:
    def test_stores_signal_and_defers_job_in_one_transaction(self, client, db, config):
        body = b'{"ticker": "aapl", "action": "buy", "quantity": 2, "price": 190.5}'
        response = client.post(
            config["url"],
            data=body,
            content_type="application/json",
            environ_base={"REMOTE_ADDR": "52.89.214.238"},
        )
        assert response.status_code == 200
        assert response.json["status"] == "accepted"
        row = stored(db, response.json["signal_id"])
        assert row["status"] == "accepted"
        assert row["raw_body"] == body.decode()
        assert row["content_type"] == "application/json"
        assert str(row["source_ip"]) == "52.89.214.238"
        assert row["ticker"] == "AAPL" and row["action"] == "buy"
        assert row["signal"]["quantity"] == "2"
        with db.transaction() as conn:
            job = conn.execute("select * from procrastinate_jobs where id = %s", (row["job_id"],)).fetchone()
        assert job["task_name"] == "viewzenix.execute_signal"
        assert job["args"] == {"signal_id": response.json["signal_id"]}
        assert job["lock"] == f"signal:{config['id']}:AAPL"
        assert job["status"] == "todo"

    def test_accepts_valid_json_sent_as_text_plain(self, client, config):
        response = client.post(
            config["url"], data='{"ticker":"SPY","action":"sell"}', content_type="text/plain"
        )
        assert response.status_code == 200


class TestRefused:
    def test_unknown_config_and_wrong_token_answer_the_same_404(self, client, db, config):
        alert = {"ticker": "SPY", "action": "buy"}
        wrong_token = client.post(f"/webhooks/{config['id']}/not-the-token", json=alert)
        unknown = client.post(f"/webhooks/{uuid.uuid4()}/{config['token']}", json=alert)
        assert wrong_token.status_code == unknown.status_code == 404
        assert wrong_token.json == unknown.json
        with db.transaction() as conn:
            assert (
                conn.execute(
                    "select count(*) as n from public.signals where config_id = %s", (config["id"],)
                ).fetchone()["n"]
                == 0
            )

    def test_malformed_json_is_400_with_line_and_column_and_stored(self, client, db, config):
        body = '{\n    "ticker": "TSLA",\n    "action": "buy",\n}'
        response = client.post(config["url"], data=body, content_type="text/plain")
        assert response.status_code == 400
        assert response.json["code"] == "trailing_comma"
        assert response.json["errors"]["line"] == 3  # the comma itself
        row = stored(db, response.json["signal_id"])
        assert row["status"] == "rejected"
        assert row["reject_code"] == "trailing_comma"
        assert row["raw_body"] == body

    def test_unknown_action_is_422_and_stored(self, client, db, config):
        response = client.post(config["url"], json={"ticker": "SPY", "action": "hold"})
        assert response.status_code == 422
        assert response.json["code"] == "unknown_action"
        assert stored(db, response.json["signal_id"])["reject_code"] == "unknown_action"

    def test_inactive_config_refuses_with_403_and_stores(self, client, db, config):
        client.patch(
            f"/api/webhook-configs/{config['id']}",
            json={"is_active": False},
            headers=config["headers"],
        )
        response = client.post(config["url"], json={"ticker": "SPY", "action": "buy"})
        assert response.status_code == 403
        assert response.json["code"] == "config_inactive"
        assert stored(db, response.json["signal_id"])["status"] == "rejected"

    def test_oversized_body_is_413_and_stored_truncated(self, client, db, config):
        body = '{"ticker": "SPY", "action": "buy", "pad": "' + "x" * 70_000 + '"}'
        response = client.post(config["url"], data=body, content_type="application/json")
        assert response.status_code == 413
        assert response.json["code"] == "body_too_large"
        assert stored(db, response.json["signal_id"])["status"] == "rejected"


class TestSingleTenant:
    def test_wrong_passphrase_is_401_and_stored_masked(self, client, db):
        response = client.post("/webhook", json={"passphrase": "guess", "ticker": "SPY", "action": "buy"})
        assert response.status_code == 401
        assert response.json["code"] == "invalid_passphrase"
        row = stored(db, response.json["signal_id"])
        assert row["status"] == "rejected"
        assert "guess" not in row["raw_body"]

    def test_missing_passphrase_is_401(self, client):
        response = client.post("/webhook", json={"ticker": "SPY", "action": "buy"})
        assert response.status_code == 401

    def test_right_passphrase_is_accepted_and_masked(self, client, db):
        response = client.post(
            "/webhook",
            json={"passphrase": "test-passphrase", "ticker": "SPY", "action": "buy", "price": 500},
        )
        assert response.status_code == 200
        row = stored(db, response.json["signal_id"])
        assert "test-passphrase" not in row["raw_body"]
        assert "test-passphrase" not in json.dumps(row["payload"])

    def test_strategy_format_with_passphrase(self, client):
        body = CORPUS[24]["body"].replace('"abcdefgh"', '"test-passphrase"')
        response = client.post("/webhook", data=body, content_type="application/json")
        assert response.status_code == 200, response.json
        assert response.json["ticker"] == "DOGEUSDT"


@pytest.mark.parametrize("index", range(len(CORPUS)), ids=[f"corpus-{i}" for i in range(len(CORPUS))])
def test_every_corpus_body_gets_a_deliberate_stored_answer(client, db, config, index):
    entry = CORPUS[index]
    response = client.post(config["url"], data=entry["body"].encode(), content_type=entry["content_type"])
    assert response.status_code < 500
    body = response.json
    row = stored(db, body["signal_id"])
    assert row is not None, "every alert reaching a known config is stored"
    if response.status_code == 200:
        assert body["status"] == row["status"] == "accepted"
        assert row["signal"]["ticker"]
    else:
        assert response.status_code in (400, 413, 422)
        assert body["code"] == row["reject_code"] and body["message"]
        assert row["status"] == "rejected"


@pytest.mark.parametrize(
    "body",
    [
        '{"\\u0000": "\\u0000"}',
        '{"a\\u0000": {"b": "\\u0000"}}',
        '{"\\ud800": "x\\u0000"}',
        '"\\ud800"',
    ],
    ids=["nul-key", "nested-nul", "lone-surrogate-key", "lone-surrogate-scalar"],
)
def test_text_postgres_cannot_store_is_refused_and_still_stored(client, db, config, body):
    response = client.post(config["url"], data=body, content_type="application/json")
    assert 400 <= response.status_code < 500
    row = stored(db, response.json["signal_id"])
    assert row["status"] == "rejected"
    assert row["reject_code"] == response.json["code"]


@pytest.mark.parametrize(
    ("remote_addr", "source_ip"),
    [("1.2.3.4:5678", None), ("garbage", None), ("", None), ("fe80::1%eth0", "fe80::1")],
)
def test_client_address_is_stored_only_when_it_is_an_ip(client, db, config, remote_addr, source_ip):
    response = client.post(
        config["url"], json={"ticker": "SPY", "action": "buy"}, environ_base={"REMOTE_ADDR": remote_addr}
    )
    assert response.status_code == 200
    stored_ip = stored(db, response.json["signal_id"])["source_ip"]
    assert (None if stored_ip is None else str(stored_ip)) == source_ip


def test_a_ticker_no_broker_could_have_is_refused_and_stored(client, db, config):
    body = '{"ticker": "\U0001d538\U0001d538\u2119\U0001d543", "action": "buy"}'
    response = client.post(config["url"], data=body.encode(), content_type="application/json")
    assert response.status_code == 422 and response.json["code"] == "invalid_ticker"
    row = stored(db, response.json["signal_id"])
    assert (row["status"], row["reject_code"]) == ("rejected", "invalid_ticker")


@pytest.mark.parametrize("ticker", ["ſPY", "ıBM", "ß"])
def test_a_lookalike_ticker_is_refused_and_stored_as_sent(client, db, config, ticker):
    body = json.dumps({"ticker": ticker, "action": "buy"}, ensure_ascii=False).encode()
    response = client.post(config["url"], data=body, content_type="application/json")
    assert response.status_code == 422
    assert response.json["code"] == "invalid_ticker"
    assert "outside ASCII" in response.json["message"]
    row = stored(db, response.json["signal_id"])
    assert (row["status"], row["reject_code"]) == ("rejected", "invalid_ticker")
    assert row["ticker"] is None
    with db.transaction() as conn:
        assert conn.execute("select job_id from public.signals where id = %s", (row["id"],)).fetchone() == {
            "job_id": None
        }


class TestRefusedUnauthenticatedBodies:
    """A wrong-passphrase body is stored as its size, digest and first KiB, not in full twice."""

    def test_a_wrong_passphrase_keeps_the_bodys_size_digest_and_first_kib(self, client, db):
        import hashlib

        body = json.dumps({"passphrase": "guess", "ticker": "SPY", "action": "buy", "pad": "x" * 60_000})
        response = client.post("/webhook", data=body, content_type="application/json")
        assert (response.status_code, response.json["code"]) == (401, "invalid_passphrase")
        row = stored(db, response.json["signal_id"])
        assert row["status"] == "rejected" and row["reject_code"] == "invalid_passphrase"
        assert row["payload"] is None  # the parsed body is not kept either
        assert len(row["raw_body"].encode()) <= 1024
        assert row["raw_body"].startswith('{"passphrase": "') and "guess" not in row["raw_body"]
        assert row["reject_details"] == {
            "body_bytes": len(body.encode()),
            "body_sha256": hashlib.sha256(body.encode()).hexdigest(),
            "body_truncated": True,
        }

    def test_a_body_that_does_not_parse_on_webhook_is_summarised_too(self, client, db):
        body = b"not json " + b"y" * 5000
        response = client.post("/webhook", data=body, content_type="text/plain")
        assert response.status_code in (400, 401, 422)
        row = stored(db, response.json["signal_id"])
        assert len(row["raw_body"].encode()) <= 1024
        assert row["reject_details"]["body_bytes"] == len(body)

    def test_an_authenticated_refusal_keeps_the_whole_body(self, client, db):
        body = json.dumps(
            {"passphrase": "test-passphrase", "ticker": "ſPY", "action": "buy", "pad": "z" * 3000}
        )
        response = client.post("/webhook", data=body.encode(), content_type="application/json")
        assert response.status_code == 422
        row = stored(db, response.json["signal_id"])
        assert len(row["raw_body"]) > 3000 and "body_sha256" not in (row["reject_details"] or {})


def test_refused_signals_past_their_retention_are_purged_by_the_hourly_job(client, db, database_url, config):
    from config import load_config
    from viewzenix.jobs import PURGE_EXPIRED, build_job_app
    from viewzenix.jobs.tasks import register_tasks

    old_refused = client.post(config["url"], json={"ticker": "ſPY", "action": "buy"}).json["signal_id"]
    new_refused = client.post(config["url"], json={"ticker": "ſPY", "action": "sell"}).json["signal_id"]
    old_accepted = client.post(config["url"], json={"ticker": "SPY", "action": "buy"}).json["signal_id"]
    with db.transaction() as conn:
        conn.execute(
            "update public.signals set received_at = now() - interval '31 days' where id = any(%s)",
            ([uuid.UUID(old_refused), uuid.UUID(old_accepted)],),
        )
    job_app = build_job_app(database_url)
    register_tasks(job_app, db, load_config({"REFUSED_SIGNAL_RETENTION_DAYS": "30"}))
    job_app.tasks[PURGE_EXPIRED].func(timestamp=0)
    assert stored(db, old_refused) is None
    assert stored(db, new_refused)["status"] == "rejected"
    assert stored(db, old_accepted) is not None
