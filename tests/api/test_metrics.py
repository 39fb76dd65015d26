"""GET /metrics (Prometheus text) and GET /readyz."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

ALERT = {"ticker": "GOOG", "action": "buy", "sentiment": "long", "quantity": "10", "price": "100.00"}


def scrape(client, **kwargs) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.data
    assert response.content_type.startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_counters_move_during_a_demo_like_flow(client, auth_headers, jobs):
    config = client.post(
        "/api/webhook-configs", json={"name": "metrics", "max_position_qty": "15"}, headers=auth_headers
    ).json
    url = f"/webhooks/{config['id']}/{config['token']}"
    route = "/webhooks/<uuid:config_id>/<token>"
    jobs()  # the signal and order figures are global: first run what earlier tests left queued
    before = scrape(client)

    assert client.post(url, json=ALERT).status_code == 200  # filled
    assert client.post(url, json=ALERT).status_code == 200  # a duplicate, answered 200
    assert client.post(url, json={**ALERT, "quantity": "11"}).status_code == 200  # denied (max 15)
    assert client.post(url, data="{nope", content_type="application/json").status_code == 400
    assert client.post(f"/webhooks/{config['id']}/wrong-token", json=ALERT).status_code == 404
    queued = scrape(client)
    jobs()
    after = scrape(client)

    def moved(name, frm=before, to=after, **labels):
        return value(to, name, **labels) - value(frm, name, **labels)

    assert moved("viewzenix_intake_requests_total", outcome="accepted", route=route) == 3
    assert moved("viewzenix_intake_requests_total", outcome="invalid_json", route=route) == 1
    assert moved("viewzenix_intake_requests_total", outcome="not_found", route=route) == 1
    assert moved("viewzenix_intake_request_duration_seconds_count", route=route) == 5
    assert moved("viewzenix_intake_request_duration_seconds_bucket", route=route, le="+Inf") == 5
    assert moved("viewzenix_signals", status="duplicate") == 1
    assert moved("viewzenix_signals", status="rejected") == 1
    assert moved("viewzenix_signals", status="accepted", to=queued) == 2
    assert moved("viewzenix_signals", status="executed") == 1
    assert moved("viewzenix_signals", status="denied") == 1
    assert moved("viewzenix_orders", status="filled") == 1
    assert moved("viewzenix_orders", status="denied") == 1
    task = "viewzenix.execute_signal"
    assert moved("viewzenix_job_attempts_total", task=task, outcome="succeeded") == 2
    assert moved("viewzenix_job_attempt_duration_seconds_count", task=task, outcome="succeeded") == 2
    assert (
        moved("viewzenix_job_attempt_duration_seconds_bucket", task=task, outcome="succeeded", le="+Inf") == 2
    )
    assert moved("viewzenix_queue_jobs", queue="signals", status="todo", to=queued) == 2
    assert value(queued, "viewzenix_queue_oldest_due_job_age_seconds", queue="signals") > 0
    assert value(after, "viewzenix_queue_jobs", queue="signals", status="todo") == 0


def test_notification_deliveries_are_counted(client, db):
    before = scrape(client)
    with db.transaction() as conn:
        config_id = conn.execute("select id from webhook_configs limit 1").fetchone()["id"]
        conn.execute(
            "insert into private.notification_deliveries (config_id, destination_id, event, outcome)"
            " values (%s, 'd1', 'order_denied', 'failed'), (%s, 'd1', 'order_denied', 'sent')",
            (config_id, config_id),
        )
    after = scrape(client)
    for outcome in ("failed", "sent"):
        key = ("viewzenix_notification_deliveries_total", (("event", "order_denied"), ("outcome", outcome)))
        assert after[key] - before.get(key, 0) == 1


class TestAccess:
    @pytest.fixture()
    def runtime_config(self, app):
        return app.extensions["viewzenix"].config

    def test_without_a_token_only_loopback_clients_are_served(self, client):
        response = client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"})
        assert response.status_code == 403
        assert response.json["code"] == "forbidden"
        assert "METRICS_TOKEN" in response.json["message"]

    @pytest.mark.parametrize("path", ["/metrics", "/hooks/supabase/health"])
    @pytest.mark.parametrize("forwarded", ["X-Forwarded-For", "Forwarded", "X-Real-IP"])
    def test_without_a_token_a_proxied_request_is_refused_even_from_loopback(self, client, path, forwarded):
        response = client.get(path, headers={forwarded: "203.0.113.9"})
        assert (response.status_code, response.json["code"]) == (403, "forbidden")
        assert client.get(path).status_code == 200  # the same client, direct

    def test_the_hooks_health_needs_the_token_when_one_is_set(self, client, runtime_config, monkeypatch):
        monkeypatch.setattr(runtime_config, "METRICS_TOKEN", "s3cret-scrape")
        assert client.get("/hooks/supabase/health").status_code == 401
        ok = client.get("/hooks/supabase/health", headers={"Authorization": "Bearer s3cret-scrape"})
        assert (ok.status_code, ok.json["status"]) == (200, "ok")

    def test_with_a_token_the_bearer_is_required(self, client, runtime_config, monkeypatch):
        monkeypatch.setattr(runtime_config, "METRICS_TOKEN", "s3cret-scrape")
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-scrape"}):
            response = client.get("/metrics", headers=headers)
            assert (response.status_code, response.json["code"]) == (401, "unauthorized")
        ok = client.get(
            "/metrics",
            headers={"Authorization": "Bearer s3cret-scrape"},
            environ_base={"REMOTE_ADDR": "203.0.113.9"},
        )
        assert ok.status_code == 200
        assert b"viewzenix_signals" in ok.data

    def test_turned_off_answers_404(self, client, runtime_config, monkeypatch):
        monkeypatch.setattr(runtime_config, "METRICS_ENABLED", False)
        response = client.get("/metrics")
        assert (response.status_code, response.json["code"]) == (404, "not_found")


class TestReadiness:
    @pytest.fixture()
    def runtime_config(self, app):
        return app.extensions["viewzenix"].config

    @pytest.fixture()
    def beating_worker(self, db):
        with db.transaction() as conn:
            worker_id = conn.execute(
                "insert into procrastinate_workers (last_heartbeat) values (now()) returning id"
            ).fetchone()["id"]
        yield
        with db.transaction() as conn:
            conn.execute("delete from procrastinate_workers where id = %s", (worker_id,))

    @pytest.mark.usefixtures("beating_worker")
    def test_ready_with_the_database_a_fresh_queue_and_a_beating_worker(
        self, client, runtime_config, monkeypatch
    ):
        monkeypatch.setattr(runtime_config, "READY_MAX_QUEUE_AGE_SECONDS", 10**9)
        response = client.get("/readyz")
        assert response.status_code == 200
        assert response.json == {
            "status": "ready",
            "scope": "system",
            "checks": {"database": "ok", "queue": "ok", "worker": "ok"},
            "paused": False,
        }

    @pytest.mark.usefixtures("beating_worker")
    def test_an_old_due_job_or_a_silent_worker_is_not_ready(self, client, runtime_config, monkeypatch, db):
        with db.transaction() as conn:
            conn.execute(
                "select procrastinate_defer_jobs_v1(array[row('readyz', 'viewzenix.noop', 0, null, null,"
                " '{}'::jsonb, now() - interval '2 minutes')::procrastinate_job_to_defer_v1])"
            )
        monkeypatch.setattr(runtime_config, "READY_MAX_QUEUE_AGE_SECONDS", 60)
        monkeypatch.setattr(runtime_config, "READY_WORKER_HEARTBEAT_SECONDS", -1)
        try:
            response = client.get("/readyz")
        finally:
            with db.transaction() as conn:
                conn.execute("delete from procrastinate_jobs where queue_name = 'readyz'")
        assert response.status_code == 503
        body = response.json
        assert (body["code"], body["status"]) == ("not_ready", 503)
        checks = body["errors"]["checks"]
        assert checks["database"] == "ok"
        assert checks["queue"].startswith("the oldest due job has waited ")
        assert checks["worker"].startswith("the last worker heartbeat is ")
        assert body["message"].startswith("Not ready: queue: ")

    def test_healthz_stays_a_plain_liveness_answer(self, client):
        body = client.get("/healthz").json
        assert (body["status"], body["database"]) == ("ok", "ok")
        assert set(body) == {"status", "scope", "database", "signals_waiting"}
        assert body["scope"] == "instance"

    @pytest.mark.usefixtures("beating_worker")
    def test_a_queue_behind_fails_readyz_for_alerting_but_never_healthz_for_load_balancers(
        self, client, runtime_config, monkeypatch, db
    ):
        # A bar-close burst: a due job has waited past the limit, on every web instance at once.
        with db.transaction() as conn:
            conn.execute(
                "select procrastinate_defer_jobs_v1(array[row('readyz', 'viewzenix.noop', 0, null, null,"
                " '{}'::jsonb, now() - interval '5 minutes')::procrastinate_job_to_defer_v1])"
            )
        monkeypatch.setattr(runtime_config, "READY_MAX_QUEUE_AGE_SECONDS", 60)
        try:
            ready, health = client.get("/readyz"), client.get("/healthz")
        finally:
            with db.transaction() as conn:
                conn.execute("delete from procrastinate_jobs where queue_name = 'readyz'")
        assert (ready.status_code, ready.json["code"], ready.json["scope"]) == (503, "not_ready", "system")
        assert ready.json["message"].endswith("(A system check for alerting; load balancers probe /healthz.)")
        assert health.status_code == 200
        assert (health.json["status"], health.json["scope"]) == ("ok", "instance")
        assert health.json["signals_waiting"] >= 0


# --- the REST API, idempotency replays and the Supabase receiver ------------------------------


def test_api_requests_are_counted_and_timed_by_route_template_never_the_raw_path(client, auth_headers):
    before = scrape(client)
    created = client.post("/api/webhook-configs", json={"name": "series"}, headers=auth_headers)
    config_id = created.json["id"]
    assert client.get(f"/api/webhook-configs/{config_id}", headers=auth_headers).status_code == 200
    missing = "00000000-0000-4000-8000-00000000dead"
    assert client.get(f"/api/webhook-configs/{missing}", headers=auth_headers).status_code == 404
    after = scrape(client)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    one = "/api/webhook-configs/<uuid:config_id>"
    assert (
        moved("viewzenix_api_requests_total", method="POST", route="/api/webhook-configs", status_class="2xx")
        == 1
    )
    assert moved("viewzenix_api_requests_total", method="GET", route=one, status_class="2xx") == 1
    assert moved("viewzenix_api_requests_total", method="GET", route=one, status_class="4xx") == 1
    assert moved("viewzenix_api_request_duration_seconds_count", method="GET", route=one) == 2
    assert moved("viewzenix_api_request_duration_seconds_bucket", method="GET", route=one, le="+Inf") == 2
    routes = {dict(labels).get("route") for (name, labels) in after if name.startswith("viewzenix_api_")}
    assert not any(config_id in (r or "") or missing in (r or "") for r in routes)
    # The intake series are the intake's only.
    assert not any(
        dict(labels).get("route", "").startswith("/api/")
        for (name, labels) in after
        if name.startswith("viewzenix_intake_")
    )


def test_a_server_error_is_counted_as_an_api_error(client, auth_headers, app, monkeypatch):
    from viewzenix.services import queries

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(queries, "list_positions", broken, raising=True)
    before = scrape(client)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    try:
        assert client.get("/api/positions", headers=auth_headers).status_code == 500
    finally:
        app.config["PROPAGATE_EXCEPTIONS"] = None
    after = scrape(client)
    labels = {"method": "GET", "route": "/api/positions"}
    assert (
        value(after, "viewzenix_api_errors_total", status="500", **labels)
        - value(before, "viewzenix_api_errors_total", status="500", **labels)
        == 1
    )


def test_idempotency_key_replays_count_as_hits_and_first_runs_as_misses(client, auth_headers):
    route = "/api/webhook-configs"
    before = scrape(client)
    headers = {**auth_headers, "Idempotency-Key": "metrics-replay-1"}
    first = client.post(route, json={"name": "idem"}, headers=headers)
    again = client.post(route, json={"name": "idem"}, headers=headers)
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json["id"] == first.json["id"]
    after = scrape(client)
    hits = value(after, "viewzenix_idempotency_requests_total", route=route, result="hit")
    misses = value(after, "viewzenix_idempotency_requests_total", route=route, result="miss")
    assert hits - value(before, "viewzenix_idempotency_requests_total", route=route, result="hit") == 1
    assert misses - value(before, "viewzenix_idempotency_requests_total", route=route, result="miss") == 1
