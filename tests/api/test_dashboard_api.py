"""The REST endpoints the dashboard adds: pause entries, test alerts, equity history, closed
trades, the account summary, the local sign-in exchange, and the pages themselves."""

from __future__ import annotations

import json
import uuid

import pytest

pytestmark = pytest.mark.db


def create(client, headers, **fields):
    response = client.post("/api/webhook-configs", json={"name": "dash", **fields}, headers=headers)
    assert response.status_code == 201, response.json
    return response.json


def send(client, config, body):
    response = client.post(f"/webhooks/{config['id']}/{config['token']}", data=json.dumps(body))
    assert response.status_code == 200, response.json
    return response.json["signal_id"]


def signal(client, headers, signal_id):
    return client.get(f"/api/signals/{signal_id}", headers=headers).json


class TestPauseEntries:
    def test_is_off_by_default_and_set_by_patch(self, client, auth_headers):
        config = create(client, auth_headers)
        assert config["entries_paused"] is False
        patched = client.patch(
            f"/api/webhook-configs/{config['id']}", json={"entries_paused": True}, headers=auth_headers
        )
        assert patched.json["entries_paused"] is True

    def test_refuses_entries_and_lets_exits_through(self, client, auth_headers, jobs):
        config = create(client, auth_headers)
        entered = send(client, config, {"ticker": "AAPL", "action": "buy", "quantity": 5, "price": 100})
        jobs()
        client.patch(
            f"/api/webhook-configs/{config['id']}", json={"entries_paused": True}, headers=auth_headers
        )
        paused_buy = send(client, config, {"ticker": "MSFT", "action": "buy", "quantity": 1, "price": 300})
        exit_ = send(client, config, {"ticker": "AAPL", "action": "exit", "price": 101})
        jobs()

        assert signal(client, auth_headers, entered)["status"] == "executed"
        denied = signal(client, auth_headers, paused_buy)
        assert denied["status"] == "denied"
        assert denied["orders"][0]["status_code"] == "entries_paused"
        assert "entries are paused" in denied["orders"][0]["status_message"]
        exited = signal(client, auth_headers, exit_)
        assert exited["status"] == "executed"
        assert [(o["side"], o["qty"], o["status"]) for o in exited["orders"]] == [("sell", "5", "filled")]

    def test_an_inactive_config_still_refuses_everything_at_intake(self, client, auth_headers):
        config = create(client, auth_headers, is_active=False, entries_paused=True)
        response = client.post(
            f"/webhooks/{config['id']}/{config['token']}", json={"ticker": "AAPL", "action": "exit"}
        )
        assert response.status_code == 403
        assert response.json["code"] == "config_inactive"


class TestTestAlert:
    def test_goes_through_intake_and_is_marked_test(self, client, auth_headers, jobs):
        config = create(client, auth_headers)
        response = client.post(
            f"/api/webhook-configs/{config['id']}/test-alert",
            json={"body": '{"ticker": "NVDA", "action": "buy", "quantity": 2, "price": 120}'},
            headers=auth_headers,
        )
        assert response.status_code == 200
        result = response.json
        assert result["intake_status"] == 200
        assert result["intake_response"]["status"] == "accepted"
        assert result["intake_response"]["signal_id"] == result["signal_id"]
        jobs()
        row = signal(client, auth_headers, result["signal_id"])
        assert (row["status"], row["is_test"], row["ticker"]) == ("executed", True, "NVDA")
        assert row["orders"][0]["filled_qty"] == "2"
        listed = client.get(f"/api/signals?config_id={config['id']}&is_test=true", headers=auth_headers).json
        assert [s["id"] for s in listed] == [result["signal_id"]]
        real = client.get(f"/api/signals?config_id={config['id']}&is_test=false", headers=auth_headers).json
        assert real == []

    def test_a_malformed_body_is_refused_as_tradingview_would_see_it(self, client, auth_headers):
        config = create(client, auth_headers)
        result = client.post(
            f"/api/webhook-configs/{config['id']}/test-alert",
            json={"body": '{"ticker": "AAPL", "action": "buy",}'},
            headers=auth_headers,
        ).json
        assert result["intake_status"] == 400
        assert result["intake_response"]["code"] == "trailing_comma"
        row = signal(client, auth_headers, result["signal_id"])
        assert (row["status"], row["is_test"]) == ("rejected", True)

    def test_another_users_config_is_not_found(self, client, auth_headers, make_user):
        config = create(client, auth_headers)
        _, other = make_user()
        response = client.post(
            f"/api/webhook-configs/{config['id']}/test-alert",
            json={},
            headers={"Authorization": f"Bearer {other}"},
        )
        assert response.status_code == 404
        assert response.json["code"] == "not_found"


class TestHistory:
    def test_equity_history_trades_and_summary_follow_the_fills(self, client, auth_headers, jobs):
        config = create(client, auth_headers, commission_fixed="1", starting_cash="10000")
        other = create(client, auth_headers, starting_cash="5000")
        send(client, config, {"ticker": "AAPL", "action": "buy", "quantity": 10, "price": 100})
        jobs()
        send(client, config, {"ticker": "AAPL", "action": "exit", "price": 110})
        jobs()

        history = client.get(
            f"/api/account/equity-history?config_id={config['id']}", headers=auth_headers
        ).json
        assert [p["equity"] for p in history["points"]] == ["10000", "9999", "10098", "10098"]
        assert history["equity"] == "10098"

        [trade] = client.get(f"/api/trades?config_id={config['id']}", headers=auth_headers).json
        assert (trade["symbol"], trade["side"], trade["qty"]) == ("AAPL", "long", "10")
        assert (trade["gross_pnl"], trade["commission"], trade["net_pnl"]) == ("100", "2", "98")

        summary = client.get("/api/account/summary", headers=auth_headers).json
        assert summary["config_count"] == 2
        assert (summary["starting_cash"], summary["equity"]) == ("15000", "15098")
        assert (summary["realized_pnl"], summary["commission_paid"]) == ("100", "2")
        assert {c["name"] for c in summary["configs"]} == {"dash"}
        assert {c["config_id"] for c in summary["configs"]} == {config["id"], other["id"]}

    def test_another_users_history_is_invisible(self, client, auth_headers, make_user, jobs):
        config = create(client, auth_headers)
        send(client, config, {"ticker": "AAPL", "action": "buy", "quantity": 1, "price": 100})
        jobs()
        _, token = make_user()
        other = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/account/equity-history", headers=other).json["points"] == []
        assert client.get("/api/trades", headers=other).json == []
        response = client.get(f"/api/account/equity-history?config_id={config['id']}", headers=other)
        assert response.status_code == 404

    def test_needs_a_bearer_token(self, client):
        for path in ("/api/account/equity-history", "/api/trades", "/api/account/summary"):
            response = client.get(path)
            assert response.status_code == 401
            assert response.json["code"] == "token_missing"


class TestLocalSignin:
    def test_a_code_is_exchanged_once_for_a_working_token(self, client, app):
        from viewzenix.services import local_signin

        code = local_signin.issue_code(app.extensions["viewzenix"].db, "signin@example.test")
        first = client.post("/auth/local/exchange", json={"code": code})
        assert first.status_code == 200
        assert first.json["email"] == "signin@example.test"
        headers = {"Authorization": f"Bearer {first.json['access_token']}"}
        assert client.get("/api/webhook-configs", headers=headers).status_code == 200
        again = client.post("/auth/local/exchange", json={"code": code})
        assert again.status_code == 401
        assert again.json["code"] == "invalid_signin_code"

    def test_an_admin_code_signs_an_admin_in_and_a_plain_code_does_not(self, client, app):
        from viewzenix.services import local_signin

        db = app.extensions["viewzenix"].db
        admin_code = local_signin.issue_code(db, "ops@example.test", admin=True)
        plain_code = local_signin.issue_code(db, "ops@example.test")
        admin = client.post("/auth/local/exchange", json={"code": admin_code}).json
        plain = client.post("/auth/local/exchange", json={"code": plain_code}).json

        as_admin = client.get(
            "/api/admin/jobs/metrics", headers={"Authorization": f"Bearer {admin['access_token']}"}
        )
        as_plain = client.get(
            "/api/admin/jobs/metrics", headers={"Authorization": f"Bearer {plain['access_token']}"}
        )
        assert as_admin.status_code == 200 and "by_status" in as_admin.json
        assert (as_plain.status_code, as_plain.json["code"]) == (403, "admin_required")

    @pytest.mark.parametrize("body", [[], ["code"], "code", 7])
    def test_a_body_that_is_not_an_object_is_a_validation_error(self, client, body):
        response = client.post("/auth/local/exchange", json=body)
        assert (response.status_code, response.json["code"]) == (422, "validation_error")

    def test_a_missing_code_is_a_validation_error(self, client):
        response = client.post("/auth/local/exchange", json={})
        assert response.status_code == 422
        assert response.json["code"] == "validation_error"

    def test_is_off_when_supabase_url_is_set(self, database_url, tmp_path):
        from config import TestingConfig
        from viewzenix import create_app

        config = TestingConfig(
            {
                "DATABASE_URL": database_url,
                "DATA_DIR": str(tmp_path),
                "SUPABASE_URL": "https://example-ref.supabase.co",
                "SUPABASE_KEY": "public-anon-key",
            }
        )
        supabase_app = create_app(config)
        try:
            client = supabase_app.test_client()
            response = client.post("/auth/local/exchange", json={"code": "anything"})
            assert response.status_code == 404
            page = client.get("/signin").get_data(as_text=True)
            assert '"mode": "supabase"' in page
            assert "public-anon-key" in page
            assert "supabase-js-2.119.1.umd.js" in page
            assert "Sign-in code" not in page
        finally:
            supabase_app.extensions["viewzenix"].close()


class TestPages:
    @pytest.mark.parametrize("path", ["/", "/signin", "/configs", "/signals", "/orders", "/admin"])
    def test_pages_carry_no_user_data_and_load_vendored_assets(self, client, path):
        response = client.get(path)
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        assert "/ui/static/vendor/htmx-2.0.8.min.js" in html
        assert "cdn" not in html.lower()
        assert '"mode": "local"' in html

    def test_vendored_assets_match_their_pins(self):
        import subprocess
        import sys

        out = subprocess.run(
            [sys.executable, "scripts/vendor_assets.py"], capture_output=True, text=True, check=False
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.count("ok ") == 3

    @pytest.mark.parametrize(
        "query",
        [
            "/ui/fragments/signals?ticker=a%00b",
            "/ui/fragments/orders?symbol=a%00b",
            "/ui/fragments/signals?ticker=" + "A" * 65,
        ],
    )
    def test_a_bad_text_filter_is_a_422_not_a_500(self, client, auth_headers, query):
        response = client.get(query, headers=auth_headers)
        assert (response.status_code, response.json["code"]) == (422, "validation_error")

    def test_a_page_past_any_end_is_an_empty_page(self, client, auth_headers):
        response = client.get("/ui/fragments/signals?page=99999999999999999999", headers=auth_headers)
        assert response.status_code == 200

    def test_fragments_need_a_bearer_token(self, client):
        response = client.get("/ui/fragments/signals")
        assert response.status_code == 401
        assert response.json["code"] == "token_missing"

    def test_the_admin_fragment_refuses_a_non_admin_and_opens_for_an_admin(self, client, app, auth_headers):
        refused = client.get("/ui/fragments/admin", headers=auth_headers)
        assert refused.status_code == 403
        assert "Admins only" in refused.get_data(as_text=True)
        runtime = app.extensions["viewzenix"]
        token = runtime.local_signer.issue(uuid.uuid4(), "admin@example.test", app_metadata={"role": "admin"})
        opened = client.get("/ui/fragments/admin", headers={"Authorization": f"Bearer {token}"})
        assert opened.status_code == 200
        assert 'id="admin-tools"' in opened.get_data(as_text=True)

    @pytest.mark.parametrize("path", ["/admin/metrics", "/admin/jobs", "/admin/jobs/1"])
    def test_the_admin_job_fragments_refuse_a_non_admin(self, client, auth_headers, path):
        response = client.get(f"/ui/fragments{path}", headers=auth_headers)
        assert response.status_code == 403
        assert "Admins only" in response.get_data(as_text=True)

    def test_bad_job_filters_answer_html_with_a_message_per_field(self, client, app):
        runtime = app.extensions["viewzenix"]
        token = runtime.local_signer.issue(uuid.uuid4(), "admin@example.test", app_metadata={"role": "admin"})
        headers = {"Authorization": f"Bearer {token}"}
        response = client.get("/ui/fragments/admin/jobs?status=failed&status=lost", headers=headers)
        assert response.status_code == 422
        assert response.mimetype == "text/html"
        assert (
            "<strong>status</strong>: Must be one of: todo, doing, succeeded, failed, cancelled, aborted."
            in response.get_data(as_text=True)
        )
        # A datetime-local input's value has no offset: read as UTC, then checked like the API's.
        since, until = "2026-11-27T10:00", "2026-11-27T09:00"
        response = client.get(f"/ui/fragments/admin/jobs?since={since}&until={until}", headers=headers)
        assert response.status_code == 422
        assert "<strong>until</strong>: Must be later than since." in response.get_data(as_text=True)
        ok = client.get(f"/ui/fragments/admin/jobs?since={until}&until={since}", headers=headers)
        assert ok.status_code == 200

    def test_user_metadata_never_makes_an_admin(self, client, app):
        runtime = app.extensions["viewzenix"]
        token = runtime.local_signer.issue(uuid.uuid4(), "u@example.test", user_metadata={"role": "admin"})
        response = client.get("/ui/fragments/admin", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 403


class TestApiDocs:
    def test_the_docs_page_loads_swagger_ui_from_this_app(self, client):
        html = client.get("/api/docs").get_data(as_text=True)
        assert "/api/docs/static/swagger-ui-bundle.js" in html
        assert "cdn" not in html.lower()
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-ui-standalone-preset.js"):
            response = client.get(f"/api/docs/static/{asset}")
            assert response.status_code == 200
            assert len(response.data) > 1000
            response.close()

    def test_openapi_describes_intake_and_health(self, client):
        paths = client.get("/api/openapi.json").json["paths"]
        webhook = paths["/webhooks/{config_id}/{token}"]["post"]
        assert webhook["security"] == []
        assert {"200", "400", "403", "404", "413", "422"} <= set(webhook["responses"])
        assert "passphrase" in paths["/webhook"]["post"]["description"]
        assert set(paths["/healthz"]["get"]["responses"]) == {"200", "503"}
        assert "/api/account/equity-history" in paths and "/api/trades" in paths
        assert "/api/webhook-configs/{config_id}/test-alert" in paths


class TestOneStrategyAtATime:
    """Issue 18: each webhook's curve from its own start, capital changes as steps, figures."""

    def trade(self, client, config, jobs, entry, exit_, qty=10):
        send(client, config, {"ticker": "AAPL", "action": "buy", "quantity": qty, "price": entry})
        jobs()
        send(client, config, {"ticker": "AAPL", "action": "exit", "price": exit_})
        jobs()

    def test_a_starting_cash_change_is_a_step_not_a_rewrite(self, client, auth_headers, jobs):
        config = create(client, auth_headers, commission_fixed="1", starting_cash="10000")
        self.trade(client, config, jobs, 100, 110)
        path = f"/api/account/equity-history?config_id={config['id']}"
        before = client.get(path, headers=auth_headers).json["points"]
        patched = client.patch(
            f"/api/webhook-configs/{config['id']}", json={"starting_cash": "15000"}, headers=auth_headers
        )
        assert patched.status_code == 200
        after = client.get(path, headers=auth_headers).json
        # The past is unchanged; the deposit is a step at its time, and the books hold it.
        assert after["points"][:3] == before[:3]
        step = after["points"][3]
        assert (step["kind"], step["equity"], step["capital"]) == ("capital", "15098", "15000")
        assert (after["equity"], after["points"][-1]["kind"]) == ("15098", "now")
        account = client.get(f"/api/account?config_id={config['id']}", headers=auth_headers).json
        assert (account["starting_cash"], account["cash"], account["equity"]) == ("15000", "15098", "15098")
        figures = client.get(f"/api/account/performance?config_id={config['id']}", headers=auth_headers).json
        [change] = figures["capital_changes"]
        assert (change["starting_cash_before"], change["starting_cash_after"], change["amount"]) == (
            "10000",
            "15000",
            "5000",
        )
        # Saving the same value again records nothing.
        client.patch(
            f"/api/webhook-configs/{config['id']}", json={"starting_cash": "15000"}, headers=auth_headers
        )
        again = client.get(f"/api/account/performance?config_id={config['id']}", headers=auth_headers).json
        assert len(again["capital_changes"]) == 1

    def test_figures_per_webhook_and_for_all(self, client, auth_headers, jobs):
        one = create(client, auth_headers, starting_cash="10000")
        two = create(client, auth_headers, starting_cash="5000")
        self.trade(client, one, jobs, 100, 110)  # +100
        self.trade(client, one, jobs, 101, 96)  # -50 (another body: no duplicate)
        self.trade(client, two, jobs, 50, 40, qty=2)  # -20
        first = client.get(f"/api/account/performance?config_id={one['id']}", headers=auth_headers).json
        assert (first["trade_count"], first["wins"], first["losses"]) == (2, 1, 1)
        assert (first["net_pnl"], first["win_rate"], first["profit_factor"]) == ("50", "0.5", "2")
        assert (first["avg_win"], first["avg_loss"], first["largest_loss"]) == ("100", "-50", "-50")
        assert first["max_drawdown"] == "50"
        assert abs(float(first["max_drawdown_pct"]) - 50 / 10100) < 1e-12
        both = client.get("/api/account/performance", headers=auth_headers).json
        assert (both["trade_count"], both["net_pnl"], both["losses"], both["largest_loss"]) == (
            3,
            "30",
            2,
            "-50",
        )
        summary = client.get(f"/api/account/summary?config_id={two['id']}", headers=auth_headers).json
        assert (summary["config_count"], summary["equity"], summary["starting_cash"]) == (1, "4980", "5000")

    def test_trades_filter_page_and_export_as_csv(self, client, auth_headers, jobs):
        config = create(client, auth_headers, name="=HYPERLINK(1)")
        self.trade(client, config, jobs, 100, 110)
        self.trade(client, config, jobs, 101, 91)
        self.trade(client, config, jobs, 102, 103)
        base = f"/api/trades?config_id={config['id']}"
        wins = client.get(base + "&outcome=win", headers=auth_headers).json
        assert [t["net_pnl"] for t in wins] == ["10", "100"]
        assert client.get(base + "&side=short", headers=auth_headers).json == []
        page = client.get(base + "&page=2&page_size=2", headers=auth_headers)
        assert [t["net_pnl"] for t in page.json] == ["100"]
        assert json.loads(page.headers["X-Pagination"])["total"] == 3
        bad = client.get(base + "&outcome=maybe", headers=auth_headers)
        assert (bad.status_code, bad.json["code"]) == (422, "validation_error")
        assert "outcome" in bad.json["errors"]["query"]
        csv_answer = client.get(
            f"/api/trades/export?config_id={config['id']}&outcome=loss", headers=auth_headers
        )
        assert csv_answer.status_code == 200 and csv_answer.mimetype == "text/csv"
        lines = csv_answer.get_data(as_text=True).splitlines()
        assert lines[0].startswith("config_id,symbol,side,qty,entry_price,exit_price")
        assert len(lines) == 2 and ",AAPL,long,10,101,91," in lines[1] and lines[1].endswith(",-100")
