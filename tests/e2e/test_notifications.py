"""Notifications end to end: alert → trade → notify job → apprise → a fake service's HTTP API.

The services are fakes on local ports (``tests/fake_notify_services.py``); reaching them needs
``NOTIFY_ALLOW_PRIVATE_HOSTS`` naming exactly their addresses, which the fixtures set.
"""

from __future__ import annotations

import json

import pytest
from apprise.plugins.telegram import NotifyTelegram
from builders import worker_config
from fake_notify_services import BOT_TOKEN, FakeNtfy, FakeTelegram

from viewzenix import crypto

ALERT = {"ticker": "GOOG", "action": "buy", "sentiment": "long", "quantity": "10", "price": "100.00"}


@pytest.fixture()
def telegram(monkeypatch):
    fake = FakeTelegram()
    fake.server.start()
    monkeypatch.setattr(NotifyTelegram, "notify_url", fake.api_url)
    yield fake
    fake.server.clear()
    fake.server.stop()


@pytest.fixture()
def ntfy():
    fake = FakeNtfy()
    fake.server.start()
    yield fake
    fake.server.clear()
    fake.server.stop()


@pytest.fixture()
def allow_fakes(app, monkeypatch, telegram, ntfy):
    """Let destinations reach these two fakes (and nothing else private), as the setting does."""
    allowed = f"{telegram.address},{ntfy.address}"
    monkeypatch.setenv("NOTIFY_ALLOW_PRIVATE_HOSTS", allowed)
    monkeypatch.setattr(
        app.extensions["viewzenix"].config, "NOTIFY_ALLOW_PRIVATE_HOSTS", frozenset(allowed.split(","))
    )


def make_config(client, headers, destinations, **settings):
    response = client.post(
        "/api/webhook-configs",
        json={"name": "notified", "notification_preferences": {"destinations": destinations}, **settings},
        headers=headers,
    )
    assert response.status_code == 201, response.json
    data = response.json
    return {**data, "url": f"/webhooks/{data['id']}/{data['token']}"}


def deliveries(db, config_id):
    with db.transaction() as conn:
        return conn.execute(
            "select event, outcome, attempt, error, service, context from private.notification_deliveries"
            " where config_id = %s order by id",
            (config_id,),
        ).fetchall()


def signal(client, headers, signal_id):
    return client.get(f"/api/signals/{signal_id}", headers=headers).json


@pytest.mark.usefixtures("allow_fakes")
class TestDelivery:
    def test_a_denied_order_produces_exactly_one_notification_at_the_telegram_fake(
        self, client, auth_headers, jobs, db, telegram
    ):
        config = make_config(
            client, auth_headers, [{"url": telegram.apprise_url, "level": "failures"}], max_position_qty="5"
        )
        response = client.post(config["url"], json=ALERT)
        assert response.status_code == 200
        assert telegram.messages == []  # nothing is sent from the webhook request

        jobs()
        jobs()  # a second worker run sends nothing more

        assert signal(client, auth_headers, response.json["signal_id"])["orders"][0]["status"] == "denied"
        [message] = telegram.messages
        assert message["chat_id"] == -1001234567890 or str(message["chat_id"]) == "-1001234567890"
        assert "Denied by your rules: BUY 10 GOOG" in message["text"]
        assert "max_position_qty" in message["text"]
        [row] = deliveries(db, config["id"])
        assert (row["event"], row["outcome"], row["attempt"], row["service"]) == (
            "order_denied",
            "sent",
            1,
            "Telegram",
        )
        assert row["context"]["signal_id"] == response.json["signal_id"]

    def test_a_fill_is_sent_at_level_all_and_not_at_failures_only(
        self, client, auth_headers, jobs, telegram, ntfy
    ):
        config = make_config(
            client,
            auth_headers,
            [{"url": telegram.apprise_url, "level": "failures"}, {"url": ntfy.apprise_url, "level": "all"}],
        )
        client.post(config["url"], json=ALERT)
        jobs()
        assert telegram.messages == []
        [(_topic, title, text)] = ntfy.messages
        assert title == "Filled: BUY 10 GOOG"
        assert "filled at 100" in text

    def test_events_not_chosen_are_not_sent(self, client, auth_headers, jobs, ntfy):
        config = make_config(client, auth_headers, [{"url": ntfy.apprise_url, "events": ["order_denied"]}])
        client.post(config["url"], json=ALERT)  # fills
        jobs()
        assert ntfy.messages == []

    def test_an_alert_refused_at_intake_is_notified(self, client, auth_headers, jobs, ntfy, db):
        config = make_config(client, auth_headers, [{"url": ntfy.apprise_url}])
        response = client.post(config["url"], data='{"ticker": "GOOG",}', content_type="application/json")
        assert response.status_code == 400
        jobs()
        [(_, title, text)] = ntfy.messages
        assert title.startswith("Alert refused: ")
        assert response.json["signal_id"] in text
        assert [r["event"] for r in deliveries(db, config["id"])] == ["signal_refused"]

    def test_an_alert_to_a_turned_off_config_is_notified_as_refused(
        self, client, auth_headers, jobs, ntfy, db
    ):
        config = make_config(client, auth_headers, [{"url": ntfy.apprise_url}])
        patched = client.patch(
            f"/api/webhook-configs/{config['id']}", json={"is_active": False}, headers=auth_headers
        )
        assert patched.status_code == 200
        response = client.post(config["url"], json=ALERT)  # parsed: the one-statement intake path
        assert (response.status_code, response.json["code"]) == (403, "config_inactive")
        jobs()
        [(_, title, text)] = ntfy.messages
        assert title == "Alert refused: config_inactive"
        assert response.json["signal_id"] in text

    def test_a_destination_that_is_down_never_affects_trading(self, client, auth_headers, jobs, db, ntfy):
        ntfy.down = True
        config = make_config(client, auth_headers, [{"url": ntfy.apprise_url}])
        response = client.post(config["url"], json=ALERT)
        assert response.status_code == 200
        jobs()

        stored = signal(client, auth_headers, response.json["signal_id"])
        assert stored["status"] == "executed"
        assert [(o["status"], o["filled_qty"]) for o in stored["orders"]] == [("filled", "10")]
        [row] = deliveries(db, config["id"])
        assert (row["event"], row["outcome"], row["attempt"]) == ("order_filled", "failed", 1)
        assert "503" in row["error"] or "ntfy" in row["error"].lower()
        with db.transaction() as conn:
            job = conn.execute(
                "select status, attempts, scheduled_at > now() as later from procrastinate_jobs"
                " where task_name = 'viewzenix.notify' and args->>'config_id' = %s",
                (config["id"],),
            ).fetchone()
        assert (job["status"], job["attempts"], job["later"]) == ("todo", 1, True)  # retried with backoff

        # The service comes back; the retry (made due now) delivers it once.
        ntfy.down = False
        with db.transaction() as conn:
            conn.execute(
                "update procrastinate_jobs set scheduled_at = now() where task_name = 'viewzenix.notify'"
                " and args->>'config_id' = %s",
                (config["id"],),
            )
        jobs()
        assert len(ntfy.messages) == 1
        assert [(r["outcome"], r["attempt"]) for r in deliveries(db, config["id"])] == [
            ("failed", 1),
            ("sent", 2),
        ]

    def test_test_endpoint_reports_each_destination(self, client, auth_headers, telegram, ntfy, db):
        ntfy.down = True
        config = make_config(client, auth_headers, [{"url": telegram.apprise_url}, {"url": ntfy.apprise_url}])
        response = client.post(
            f"/api/webhook-configs/{config['id']}/notifications/test", headers=auth_headers
        )
        assert response.status_code == 200
        results = response.json["results"]
        ids = [d["id"] for d in config["notification_preferences"]["destinations"]]
        assert [(r["destination_id"], r["service"], r["outcome"]) for r in results] == [
            (ids[0], "Telegram", "sent"),
            (ids[1], "ntfy", "failed"),
        ]
        assert results[0]["error"] is None and results[1]["error"]
        assert telegram.messages[0]["text"].startswith("<b>Viewzenix test notification</b>") or (
            "Viewzenix test notification" in telegram.messages[0]["text"]
        )
        assert [r["event"] for r in deliveries(db, config["id"])] == ["test", "test"]


class TestDestinationsSaved:
    @pytest.mark.usefixtures("allow_fakes")
    def test_secrets_are_encrypted_at_rest_and_masked_when_shown(self, client, auth_headers, db, telegram):
        config = make_config(
            client, auth_headers, [{"url": telegram.apprise_url, "events": ["order_denied"]}]
        )
        [shown] = config["notification_preferences"]["destinations"]
        assert set(shown) == {"id", "service", "url_masked", "events", "level"}
        assert BOT_TOKEN not in json.dumps(config)
        assert shown["url_masked"].startswith("tgram://1...h/")
        assert (shown["events"], shown["level"]) == (["order_denied"], "all")
        got = client.get(f"/api/webhook-configs/{config['id']}", headers=auth_headers).json
        assert got["notification_preferences"] == config["notification_preferences"]
        with db.transaction() as conn:
            stored = conn.execute(
                "select notification_preferences::text as prefs from webhook_configs where id = %s",
                (config["id"],),
            ).fetchone()["prefs"]
        assert BOT_TOKEN not in stored
        [destination] = json.loads(stored)["destinations"]
        assert crypto.decrypt(destination["url_encrypted"]) == telegram.apprise_url

    @pytest.mark.usefixtures("allow_fakes")
    def test_a_destination_given_by_id_keeps_its_url(self, client, auth_headers, db, telegram):
        config = make_config(client, auth_headers, [{"url": telegram.apprise_url}])
        [shown] = config["notification_preferences"]["destinations"]
        response = client.patch(
            f"/api/webhook-configs/{config['id']}",
            json={"notification_preferences": {"destinations": [{"id": shown["id"], "level": "off"}]}},
            headers=auth_headers,
        )
        assert response.status_code == 200, response.json
        assert response.json["notification_preferences"]["destinations"] == [{**shown, "level": "off"}]

    @pytest.mark.parametrize(
        ("url", "code"),
        [
            ("json://127.0.0.1:8080/hook", "destination_scheme_refused"),
            ("jsons://example.com/hook", "destination_scheme_refused"),
            ("xml://example.com/hook", "destination_scheme_refused"),
            ("form://example.com/hook", "destination_scheme_refused"),
            ("ntfy://127.0.0.1:8080/alerts", "destination_host_refused"),
            ("ntfy://localhost:8080/alerts", "destination_host_refused"),
            ("ntfy://2130706433/alerts", "destination_host_refused"),  # 127.0.0.1 as one number
            ("ntfy://10.1.2.3/alerts", "destination_host_refused"),
            ("ntfy://192.168.0.10/alerts", "destination_host_refused"),
            ("ntfys://169.254.169.254/latest", "destination_host_refused"),  # cloud metadata
            ("ntfy://[::1]:8080/alerts", "destination_host_refused"),
            ("gotify://172.16.0.1/token123", "destination_host_refused"),
            ("syslog://", "destination_scheme_refused"),  # apprise knows it; not a service we allow
            ("nosuchservice://x/y", "invalid_destination"),
            ("not a url", "invalid_destination"),
        ],
    )
    def test_ssrf_and_unparsable_destinations_are_refused_with_422(self, client, auth_headers, url, code):
        response = client.post(
            "/api/webhook-configs",
            json={"name": "ssrf", "notification_preferences": {"destinations": [{"url": url}]}},
            headers=auth_headers,
        )
        assert response.status_code == 422, response.json
        assert response.json["code"] == code
        assert response.json["message"].startswith("destinations[0]: ")
        assert "notification_preferences" in response.json["errors"]["json"]
        assert client.get("/api/webhook-configs", headers=auth_headers).json == []  # nothing saved

    def test_a_fakes_address_is_refused_without_the_setting(self, client, auth_headers, ntfy):
        response = client.post(
            "/api/webhook-configs",
            json={"name": "x", "notification_preferences": {"destinations": [{"url": ntfy.apprise_url}]}},
            headers=auth_headers,
        )
        assert (response.status_code, response.json["code"]) == (422, "destination_host_refused")

    def test_unknown_events_and_levels_are_refused(self, client, auth_headers):
        for destination in (
            {"url": "tgram://1:a/2", "events": ["everything"]},
            {"url": "tgram://1:a/2", "level": "loud"},
        ):
            response = client.post(
                "/api/webhook-configs",
                json={"name": "x", "notification_preferences": {"destinations": [destination]}},
                headers=auth_headers,
            )
            assert response.status_code == 422
            assert "notification_preferences" in response.json["errors"]["json"]


@pytest.mark.usefixtures("allow_fakes")
class TestOtherEvents:
    def test_a_job_that_fails_after_its_last_retry_is_notified(
        self, client, auth_headers, jobs, ntfy, db, monkeypatch
    ):
        from viewzenix.services import accounts

        def broken_broker(db, config, clock=None, credentials=None):
            raise RuntimeError("the broker adapter exploded")

        monkeypatch.setattr(accounts, "broker_for", broken_broker)  # not a transient error: no retry
        config = make_config(client, auth_headers, [{"url": ntfy.apprise_url, "events": ["job_failed"]}])
        response = client.post(config["url"], json=ALERT)
        jobs()

        assert signal(client, auth_headers, response.json["signal_id"])["status"] == "failed"
        [(_, title, text)] = ntfy.messages
        assert title == "Job failed after its last retry: viewzenix.execute_signal"
        assert "RuntimeError: the broker adapter exploded" in text
        assert [(r["event"], r["outcome"]) for r in deliveries(db, config["id"])] == [("job_failed", "sent")]

    def test_drift_found_by_reconciliation_is_notified(self, client, auth_headers, jobs, ntfy, db):
        from fake_broker import FakeBroker

        from viewzenix.services.reconciliation import reconcile

        config = make_config(client, auth_headers, [{"url": ntfy.apprise_url, "events": ["drift_found"]}])
        client.post(config["url"], json=ALERT)
        jobs()
        assert ntfy.messages == []  # a fill, not wanted here

        [run] = reconcile(db, config_id=config["id"], brokers=lambda c: FakeBroker())  # a broker without it
        assert run["orders_in_drift"] == 1
        jobs()
        [(_, title, text)] = ntfy.messages
        assert title == "Drift between our books and the broker's"
        assert text.startswith("1 of 1 order(s) and 1 position(s) differ")


class TestNeverFailsTheTrade:
    def test_a_notification_that_cannot_be_queued_never_fails_the_trade(
        self, client, auth_headers, jobs, db, monkeypatch, telegram, allow_fakes
    ):
        from viewzenix import notifications

        def broken_defer(jobs, connection):
            connection.execute("select 1 / 0")  # the queue's insert fails inside the trade's transaction

        config = make_config(client, auth_headers, [{"url": telegram.apprise_url}])
        monkeypatch.setattr(notifications._manager, "batch_defer_jobs", broken_defer)
        response = client.post(config["url"], json=ALERT)
        jobs()

        stored = signal(client, auth_headers, response.json["signal_id"])
        assert stored["status"] == "executed"
        assert [(o["status"], o["filled_qty"]) for o in stored["orders"]] == [("filled", "10")]
        assert telegram.messages == []

    def test_free_form_preferences_saved_before_are_ignored(self, client, auth_headers, jobs, db):
        config = make_config(client, auth_headers, [])
        with db.transaction() as conn:
            conn.execute(
                "update webhook_configs set notification_preferences = %s::jsonb where id = %s",
                (
                    '{"email": "me@example.com", "destinations": [{"url": "tgram://1:a/2"}, "x"]}',
                    config["id"],
                ),
            )
        refused = client.post(config["url"], data="{oops", content_type="application/json")
        assert refused.status_code == 400
        accepted = client.post(config["url"], json=ALERT)
        assert accepted.status_code == 200
        jobs()
        assert signal(client, auth_headers, accepted.json["signal_id"])["status"] == "executed"


@pytest.mark.usefixtures("allow_fakes")
def test_a_job_whose_worker_died_on_its_last_attempt_is_notified(
    client, auth_headers, jobs, ntfy, db, database_url
):
    import asyncio
    from types import SimpleNamespace

    from viewzenix.jobs import RETRY_STALLED_JOBS, build_job_app
    from viewzenix.jobs.retry import SIGNAL_RETRY
    from viewzenix.jobs.tasks import register_tasks

    config = make_config(client, auth_headers, [{"url": ntfy.apprise_url, "events": ["job_failed"]}])
    signal_id = client.post(config["url"], json=ALERT).json["signal_id"]
    with db.transaction() as conn:  # its job left doing, on its last attempt, by a worker dead for an hour
        worker_id = conn.execute(
            "insert into procrastinate_workers (last_heartbeat)"
            " values (now() - interval '1 hour') returning id"
        ).fetchone()["id"]
        conn.execute(
            "update procrastinate_jobs j set status = 'doing', worker_id = %s, attempts = %s"
            " from public.signals s where s.id = %s and j.id = s.job_id",
            (worker_id, SIGNAL_RETRY.max_attempts - 1, signal_id),
        )
    job_app = build_job_app(database_url)
    register_tasks(job_app, db, worker_config())

    async def sweep() -> None:
        async with job_app.open_async():
            context = SimpleNamespace(app=job_app, worker_name="sweeper")
            await job_app.tasks[RETRY_STALLED_JOBS].func(context, timestamp=0)

    asyncio.run(sweep())
    jobs()

    [(_, title, text)] = ntfy.messages
    assert title == "Job failed after its last retry: viewzenix.execute_signal"
    assert text.startswith("WorkerDied: its worker died on every attempt")
    assert signal_id in text
