"""POST /hooks/supabase/db: signatures checked on raw bytes before parsing, routing by table,
watchers and profiles kept in step in order, every delivery recorded; GET /hooks/supabase/health."""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest
from standardwebhooks.webhooks import Webhook

import config as app_config
from viewzenix.webhooks.signatures import sign_hmac

SECRET = "seed-shared-secret"
NEW_WHSEC = "whsec_" + base64.b64encode(b"new-standard-secret-0123456789ab").decode()
OLD_WHSEC = "whsec_" + base64.b64encode(b"old-standard-secret-0123456789ab").decode()
OTHER_WHSEC = "whsec_" + base64.b64encode(b"somebody-elses-secret-0123456789").decode()
URL = "/hooks/supabase/db"


def make_app(database_url, tmp_path, **env):
    from viewzenix import create_app

    settings = {
        "DATABASE_URL": database_url,
        "DATA_DIR": str(tmp_path),
        "WEBHOOK_SECRET": SECRET,
        "STANDARD_WEBHOOK_SECRETS": f"{NEW_WHSEC} {OLD_WHSEC}",
        **env,
    }
    return create_app(app_config.TestingConfig(settings))


@pytest.fixture(scope="module")
def hooks_app(database_url, tmp_path_factory):
    app = make_app(database_url, tmp_path_factory.mktemp("hooks"))
    yield app
    app.extensions["viewzenix"].close()


@pytest.fixture()
def hooks(hooks_app):
    return hooks_app.test_client()


def body_of(payload) -> bytes:
    return payload if isinstance(payload, bytes) else json.dumps(payload).encode()


def post_hmac(client, payload, secret=SECRET):
    raw = body_of(payload)
    return client.post(
        URL, data=raw, content_type="application/json", headers={"x-hmac-sha256": sign_hmac(secret, raw)}
    )


def standard_headers(raw: bytes, secret=NEW_WHSEC, webhook_id=None, timestamp=None):
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    timestamp = int(time.time()) if timestamp is None else timestamp
    from datetime import UTC, datetime

    signature = Webhook(secret).sign(webhook_id, datetime.fromtimestamp(timestamp, tz=UTC), raw.decode())
    return {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}


def post_standard(client, payload, **kwargs):
    raw = body_of(payload)
    return client.post(
        URL, data=raw, content_type="application/json", headers=standard_headers(raw, **kwargs)
    )


def symbol_event(op, record=None, old_record=None):
    return {
        "type": op,
        "table": "user_symbols",
        "schema": "public",
        "record": record,
        "old_record": old_record,
    }


def symbol_row(user_id, symbol="BTC/USDT", timeframe="1h", updated_at="2026-11-27T10:00:00+00:00", **extra):
    return {
        "id": str(uuid.uuid4()),
        "user_id": str(user_id),
        "symbol": symbol,
        "timeframe": timeframe,
        "strategy": {"name": "sma_cross", "fast": 10},
        "active": True,
        "created_at": "2026-11-27T09:00:00+00:00",
        "updated_at": updated_at,
        **extra,
    }


def watchers_of(db, user_id):
    with db.transaction() as conn:
        return conn.execute(
            "select symbol, timeframe, strategy, active, source_updated_at::text as v "
            "from public.watchers where user_id = %s order by symbol, timeframe",
            (user_id,),
        ).fetchall()


def events_since(db, marker):
    with db.transaction() as conn:
        return conn.execute(
            "select * from private.hook_events where id > %s order by id", (marker,)
        ).fetchall()


def last_event_id(db):
    with db.transaction() as conn:
        return conn.execute("select coalesce(max(id), 0) as n from private.hook_events").fetchone()["n"]


class TestSignatures:
    def test_a_good_hmac_signature_is_applied_and_answers_the_seed_contract(self, hooks, db):
        user_id = uuid.uuid4()
        response = post_hmac(hooks, symbol_event("INSERT", symbol_row(user_id)))
        assert response.status_code == 200, response.json
        assert response.json == {
            "success": True,
            "operation": "INSERT",
            "symbol": "BTC/USDT",
            "user_id": str(user_id),
            "outcome": "applied",
        }
        assert [
            (w["symbol"], w["timeframe"], w["strategy"], w["active"]) for w in watchers_of(db, user_id)
        ] == [("BTC/USDT", "1h", {"name": "sma_cross", "fast": 10}, True)]

    def test_missing_signature_is_401_and_recorded(self, hooks, db):
        marker = last_event_id(db)
        user_id = uuid.uuid4()
        response = hooks.post(URL, data=body_of(symbol_event("INSERT", symbol_row(user_id))))
        assert response.status_code == 401
        assert response.json["code"] == "missing_signature"
        assert "x-hmac-sha256" in response.json["message"]
        assert watchers_of(db, user_id) == []
        [event] = events_since(db, marker)
        assert (event["outcome"], event["reason"], event["http_status"]) == (
            "refused",
            "missing_signature",
            401,
        )
        assert event["table_name"] is None  # the body was never parsed
        assert event["body_sha256"] is not None and event["body_bytes"] > 0

    def test_a_wrong_signature_is_401_invalid_signature(self, hooks, db):
        user_id = uuid.uuid4()
        response = post_hmac(hooks, symbol_event("INSERT", symbol_row(user_id)), secret="not-the-secret")
        assert response.status_code == 401
        assert response.json["code"] == "invalid_signature"
        assert response.json["errors"] == {"reason": "mismatch", "scheme": "hmac"}
        assert watchers_of(db, user_id) == []

    def test_a_tampered_body_fails_both_schemes(self, hooks, db):
        user_id = uuid.uuid4()
        signed = body_of(symbol_event("INSERT", symbol_row(user_id, symbol="AAPL")))
        tampered = signed.replace(b"AAPL", b"TSLA")
        for headers in ({"x-hmac-sha256": sign_hmac(SECRET, signed)}, standard_headers(signed)):
            response = hooks.post(URL, data=tampered, headers=headers)
            assert response.status_code == 401
            assert response.json["code"] == "invalid_signature"
        assert watchers_of(db, user_id) == []

    def test_a_good_standard_webhooks_signature_is_applied(self, hooks, db):
        user_id = uuid.uuid4()
        response = post_standard(hooks, symbol_event("INSERT", symbol_row(user_id, symbol="AAPL")))
        assert response.status_code == 200
        assert response.json["outcome"] == "applied"
        assert [w["symbol"] for w in watchers_of(db, user_id)] == ["AAPL"]

    def test_an_old_timestamp_is_refused_even_with_a_valid_signature(self, hooks, db):
        marker = last_event_id(db)
        user_id = uuid.uuid4()
        payload = symbol_event("INSERT", symbol_row(user_id))
        response = post_standard(hooks, payload, timestamp=int(time.time()) - 6 * 60)
        assert response.status_code == 401
        assert response.json["code"] == "invalid_signature"
        assert response.json["errors"]["reason"] == "timestamp_too_old"
        future = post_standard(hooks, payload, timestamp=int(time.time()) + 6 * 60)
        assert future.json["errors"]["reason"] == "timestamp_too_new"
        assert watchers_of(db, user_id) == []
        assert [e["reason"] for e in events_since(db, marker)] == ["invalid_signature", "invalid_signature"]

    def test_a_rotated_secret_still_verifies_and_an_unknown_one_does_not(self, hooks, db):
        user_id = uuid.uuid4()
        old = post_standard(
            hooks, symbol_event("INSERT", symbol_row(user_id, symbol="MSFT")), secret=OLD_WHSEC
        )
        assert old.status_code == 200
        other = post_standard(
            hooks, symbol_event("INSERT", symbol_row(user_id, symbol="NVDA")), secret=OTHER_WHSEC
        )
        assert other.status_code == 401 and other.json["code"] == "invalid_signature"
        assert [w["symbol"] for w in watchers_of(db, user_id)] == ["MSFT"]

    def test_malformed_standard_headers_are_a_401_not_a_crash(self, hooks):
        raw = body_of(symbol_event("INSERT", symbol_row(uuid.uuid4())))
        headers = standard_headers(raw)
        for broken in ("v1,not base64!!", "no-comma", "v1,a,b"):
            response = hooks.post(URL, data=raw, headers={**headers, "webhook-signature": broken})
            assert response.status_code == 401
            assert response.json["code"] == "invalid_signature"
        for timestamp in ("yesterday", "9" * 400, "-5", "1e9"):
            response = hooks.post(URL, data=raw, headers={**headers, "webhook-timestamp": timestamp})
            assert (response.status_code, response.json["errors"]["reason"]) == (401, "malformed_header")

    def test_only_the_configured_schemes_are_accepted(self, database_url, tmp_path):
        app = make_app(database_url, tmp_path, SUPABASE_HOOK_SCHEMES="standard")
        try:
            client = app.test_client()
            payload = symbol_event("INSERT", symbol_row(uuid.uuid4()))
            response = post_hmac(client, payload)
            assert response.status_code == 401
            assert response.json["code"] == "missing_signature"
            assert post_standard(client, payload).status_code == 200
        finally:
            app.extensions["viewzenix"].close()

    def test_without_any_secret_the_receiver_is_off(self, database_url, tmp_path):
        app = make_app(database_url, tmp_path, WEBHOOK_SECRET="", STANDARD_WEBHOOK_SECRETS="")
        try:
            response = post_hmac(app.test_client(), symbol_event("INSERT", symbol_row(uuid.uuid4())))
            assert response.status_code == 404
            assert response.json["code"] == "supabase_hooks_disabled"
        finally:
            app.extensions["viewzenix"].close()


class TestPayloads:
    def test_malformed_json_is_400_with_the_reason_and_recorded(self, hooks, db):
        marker = last_event_id(db)
        response = post_hmac(hooks, b'{"type": "INSERT", "table": ')
        assert response.status_code == 400
        assert response.json["code"] == "malformed_payload"
        assert response.json["errors"]["reason"] == "invalid_json"
        [event] = events_since(db, marker)
        assert (event["outcome"], event["reason"]) == ("refused", "malformed_payload")

    @pytest.mark.parametrize(
        ("payload", "reason"),
        [
            ([1, 2], "not_an_object"),
            ({"type": "TRUNCATE", "table": "user_symbols", "schema": "public"}, "invalid_type"),
            ({"type": "INSERT", "schema": "public", "record": {}}, "missing_table"),
            (
                {"type": "INSERT", "table": "user_symbols", "schema": "public", "record": None},
                "missing_record",
            ),
            (
                {"type": "DELETE", "table": "user_symbols", "schema": "public", "record": None},
                "missing_old_record",
            ),
            (
                {"type": "INSERT", "table": "user_symbols", "schema": "public", "record": "x"},
                "invalid_record",
            ),
        ],
    )
    def test_a_payload_that_is_not_a_database_webhook_is_400(self, hooks, payload, reason):
        response = post_hmac(hooks, payload)
        assert response.status_code == 400
        assert response.json["errors"] == {"reason": reason}

    def test_an_unknown_table_is_422(self, hooks, db):
        marker = last_event_id(db)
        response = post_hmac(hooks, {"type": "INSERT", "table": "orders", "schema": "public", "record": {}})
        assert response.status_code == 422
        assert response.json["code"] == "unknown_table"
        assert response.json["errors"] == {"table": "public.orders"}
        [event] = events_since(db, marker)
        assert (event["table_name"], event["outcome"], event["reason"]) == (
            "orders",
            "refused",
            "unknown_table",
        )

    def test_invalid_fields_are_422_with_a_message_per_field(self, hooks, db):
        user_id = uuid.uuid4()
        record = symbol_row(user_id, symbol="not a symbol", timeframe="7m", strategy=[1], active="yes")
        response = post_hmac(hooks, symbol_event("INSERT", record))
        assert response.status_code == 422
        assert response.json["code"] == "validation_error"
        assert set(response.json["errors"]) == {"symbol", "timeframe", "strategy", "active"}
        bad_user = post_hmac(hooks, symbol_event("INSERT", symbol_row("nope")))
        assert bad_user.json["errors"] == {
            "user_id": "must be a UUID (e.g. 00000000-0000-4000-8000-000000000001)"
        }
        assert watchers_of(db, user_id) == []

    @pytest.mark.parametrize("symbol", ["AAPL", "BTC/USDT", "BRK.B", "eth/usd", "ES1!"])
    def test_symbols_like_the_seeds_are_accepted_and_upper_cased(self, hooks, db, symbol):
        user_id = uuid.uuid4()
        response = post_hmac(
            hooks, symbol_event("INSERT", symbol_row(user_id, symbol=symbol, timeframe="4h"))
        )
        assert response.status_code == 200
        assert [w["symbol"] for w in watchers_of(db, user_id)] == [symbol.upper()]


class TestWatchersInOrder:
    def test_insert_update_delete(self, hooks, db):
        user_id = uuid.uuid4()
        row = symbol_row(user_id, updated_at="2026-11-27T10:00:00+00:00")
        assert post_hmac(hooks, symbol_event("INSERT", row)).status_code == 200
        changed = {
            **row,
            "strategy": {"name": "rsi"},
            "active": False,
            "updated_at": "2026-11-27T10:01:00+00:00",
        }
        response = post_hmac(hooks, symbol_event("UPDATE", changed, row))
        assert response.json["outcome"] == "applied"
        [watcher] = watchers_of(db, user_id)
        assert (watcher["strategy"], watcher["active"]) == ({"name": "rsi"}, False)
        deleted = post_hmac(hooks, symbol_event("DELETE", None, changed))
        assert deleted.json == {
            "success": True,
            "operation": "DELETE",
            "symbol": "BTC/USDT",
            "user_id": str(user_id),
            "outcome": "applied",
        }
        assert watchers_of(db, user_id) == []

    def test_defaults_for_strategy_and_active(self, hooks, db):
        user_id = uuid.uuid4()
        row = {"user_id": str(user_id), "symbol": "AAPL", "timeframe": "1d"}
        assert post_hmac(hooks, symbol_event("INSERT", row)).status_code == 200
        [watcher] = watchers_of(db, user_id)
        assert (watcher["strategy"], watcher["active"], watcher["v"]) == ({}, True, None)

    def test_an_update_that_changes_the_symbol_removes_the_old_key(self, hooks, db):
        user_id = uuid.uuid4()
        row = symbol_row(user_id, symbol="AAPL")
        post_hmac(hooks, symbol_event("INSERT", row))
        moved = {**row, "symbol": "MSFT", "timeframe": "15m", "updated_at": "2026-11-27T10:05:00+00:00"}
        assert post_hmac(hooks, symbol_event("UPDATE", moved, row)).json["outcome"] == "applied"
        assert [(w["symbol"], w["timeframe"]) for w in watchers_of(db, user_id)] == [("MSFT", "15m")]

    def test_a_replay_changes_nothing_and_is_counted(self, hooks, db):
        user_id = uuid.uuid4()
        payload = symbol_event("INSERT", symbol_row(user_id))
        post_hmac(hooks, payload)
        before = watchers_of(db, user_id)
        marker = last_event_id(db)
        again = post_hmac(hooks, payload)
        assert again.status_code == 200
        assert (again.json["outcome"], again.json["reason"]) == ("ignored", "already_applied")
        assert watchers_of(db, user_id) == before
        [event] = events_since(db, marker)
        assert (event["outcome"], event["reason"]) == ("ignored", "already_applied")

    def test_an_older_update_arriving_late_is_ignored_as_stale(self, hooks, db):
        user_id = uuid.uuid4()
        v1 = symbol_row(user_id, updated_at="2026-11-27T10:00:00+00:00")
        v2 = {**v1, "strategy": {"v": 2}, "updated_at": "2026-11-27T10:02:00+00:00"}
        v3 = {**v1, "strategy": {"v": 3}, "updated_at": "2026-11-27T10:03:00+00:00"}
        post_hmac(hooks, symbol_event("INSERT", v1))
        assert post_hmac(hooks, symbol_event("UPDATE", v3, v2)).json["outcome"] == "applied"
        late = post_hmac(hooks, symbol_event("UPDATE", v2, v1))
        assert (late.json["outcome"], late.json["reason"]) == ("ignored", "stale")
        assert watchers_of(db, user_id)[0]["strategy"] == {"v": 3}

    def test_a_late_event_cannot_bring_back_a_deleted_row(self, hooks, db):
        user_id = uuid.uuid4()
        v1 = symbol_row(user_id, updated_at="2026-11-27T10:00:00+00:00")
        v2 = {**v1, "strategy": {"v": 2}, "updated_at": "2026-11-27T10:02:00+00:00"}
        post_hmac(hooks, symbol_event("INSERT", v1))
        post_hmac(hooks, symbol_event("DELETE", None, v2))  # the delete overtook the update
        late = post_hmac(hooks, symbol_event("UPDATE", v2, v1))
        assert (late.json["outcome"], late.json["reason"]) == ("ignored", "already_applied")
        assert watchers_of(db, user_id) == []
        # ...but a new row under the same key, created later, is applied.
        again = {**v1, "updated_at": "2026-11-27T11:00:00+00:00"}
        assert post_hmac(hooks, symbol_event("INSERT", again)).json["outcome"] == "applied"
        assert len(watchers_of(db, user_id)) == 1

    def test_a_redelivered_standard_webhook_id_is_ignored(self, hooks, db):
        user_id = uuid.uuid4()
        row = symbol_row(user_id, updated_at=None)  # no updated_at: only the id can tell
        first = post_standard(hooks, symbol_event("INSERT", row), webhook_id="msg_fixed_" + user_id.hex)
        assert first.json["outcome"] == "applied"
        again = post_standard(hooks, symbol_event("INSERT", row), webhook_id="msg_fixed_" + user_id.hex)
        assert (again.json["outcome"], again.json["reason"]) == ("ignored", "duplicate_delivery")

    def test_users_read_only_their_own_watchers(self, hooks, client, db, make_user):
        owner, _token = make_user()
        other = uuid.uuid4()
        post_hmac(hooks, symbol_event("INSERT", symbol_row(owner, symbol="AAPL")))
        post_hmac(hooks, symbol_event("INSERT", symbol_row(other, symbol="AAPL")))
        claims = {"sub": str(owner), "role": "authenticated"}
        with db.transaction(claims=claims) as conn:
            rows = conn.execute("select user_id from public.watchers where symbol = 'AAPL'").fetchall()
            assert {r["user_id"] for r in rows} == {owner}
            with pytest.raises(Exception, match="permission denied"):
                conn.execute("delete from public.watchers where user_id = %s", (owner,))


def auth_event(op, record=None, old_record=None):
    return {"type": op, "table": "users", "schema": "auth", "record": record, "old_record": old_record}


def auth_user(email, updated_at="2026-11-27T10:00:00+00:00", meta=None, user_id=None):
    return {
        "id": str(user_id or uuid.uuid4()),
        "aud": "authenticated",
        "role": "authenticated",
        "email": email,
        "raw_app_meta_data": {"provider": "google", "providers": ["google"]},
        "raw_user_meta_data": meta if meta is not None else {},
        "created_at": "2026-11-27T09:00:00+00:00",
        "updated_at": updated_at,
        "is_anonymous": False,
    }


def profile(db, user_id):
    with db.transaction() as conn:
        return conn.execute("select * from public.users where id = %s", (user_id,)).fetchone()


class TestUsers:
    GOOGLE = {
        "iss": "https://accounts.google.com",
        "sub": "1234567890",
        "name": "Ann Lee",
        "full_name": "Ann Lee",
        "email": "x",
        "picture": "https://lh3.googleusercontent.com/a/ann",
        "avatar_url": "https://lh3.googleusercontent.com/a/ann",
        "email_verified": True,
    }

    def test_a_google_sign_up_creates_the_profile(self, hooks, db):
        email = f"ann.lee+tv{uuid.uuid4().hex[:6]}@gmail.test"
        record = auth_user(email, meta=self.GOOGLE)
        response = post_hmac(hooks, auth_event("INSERT", record))
        assert response.status_code == 200
        assert response.json["user_id"] == record["id"] and response.json["outcome"] == "applied"
        row = profile(db, record["id"])
        assert (row["email"], row["display_name"], row["avatar_url"]) == (
            email,
            "Ann Lee",
            "https://lh3.googleusercontent.com/a/ann",
        )
        assert row["username"] == response.json["username"]
        assert row["username"].startswith("ann_lee")

    def test_usernames_collide_into_deterministic_suffixes(self, hooks, db):
        local = f"sam{uuid.uuid4().hex[:8]}"
        tail = uuid.uuid4().hex[12:]
        # ids sharing their first 4, then 8 hex digits: each suffix level is needed once.
        ids = [uuid.uuid4(), uuid.UUID("abcd1234" + "0000" + tail), uuid.UUID("abcd5678" + "0000" + tail)]
        ids.append(uuid.UUID("abcd5678" + "1111" + tail))
        names = []
        for n, user_id in enumerate(ids):
            record = auth_user(f"{local}@d{n}.test", user_id=user_id)
            assert post_hmac(hooks, auth_event("INSERT", record)).status_code == 200
            names.append(profile(db, user_id)["username"])
        assert names == [local, f"{local}_abcd", f"{local}_abcd5678", f"{local}_{ids[3].hex}"]

    def test_an_anonymous_user_gets_a_username_too(self, hooks, db):
        record = {**auth_user(None), "is_anonymous": True}
        assert post_hmac(hooks, auth_event("INSERT", record)).status_code == 200
        assert profile(db, record["id"])["username"].startswith("user")

    def test_an_update_changes_email_and_only_the_fields_the_source_changed(self, hooks, db):
        record = auth_user(f"u{uuid.uuid4().hex[:8]}@x.test", meta={"full_name": "Old Name"})
        post_hmac(hooks, auth_event("INSERT", record))
        with db.transaction() as conn:  # the user renamed themselves in our app
            conn.execute("update public.users set display_name = 'Mine' where id = %s", (record["id"],))
        signed_in = {**record, "email": "new-" + record["email"], "updated_at": "2026-11-27T10:10:00+00:00"}
        assert post_hmac(hooks, auth_event("UPDATE", signed_in, record)).json["outcome"] == "applied"
        row = profile(db, record["id"])
        assert (row["email"], row["display_name"]) == (signed_in["email"], "Mine")
        renamed = {
            **signed_in,
            "raw_user_meta_data": {"full_name": "New Name"},
            "updated_at": "2026-11-27T10:20:00+00:00",
        }
        post_hmac(hooks, auth_event("UPDATE", renamed, signed_in))
        assert profile(db, record["id"])["display_name"] == "New Name"
        stale = post_hmac(hooks, auth_event("UPDATE", signed_in, record))
        assert (stale.json["outcome"], stale.json["reason"]) == ("ignored", "stale")

    def test_a_deleted_user_is_anonymised_and_their_configs_turned_off(self, hooks, client, db, make_user):
        email = f"gone{uuid.uuid4().hex[:8]}@x.test"
        user_id, token = make_user(email)
        created = client.post(
            "/api/webhook-configs", json={"name": "mine"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert created.status_code == 201
        record = auth_user(email, user_id=user_id)
        post_hmac(hooks, auth_event("INSERT", record))
        response = post_hmac(hooks, auth_event("DELETE", None, record))
        assert response.json["outcome"] == "applied"
        row = profile(db, user_id)
        assert (row["email"], row["display_name"], row["username"]) == (None, None, None)
        assert row["deleted_at"] is not None
        with db.transaction() as conn:
            active = conn.execute(
                "select is_active from public.webhook_configs where user_id = %s", (user_id,)
            ).fetchall()
        assert [r["is_active"] for r in active] == [False]
        late = post_hmac(hooks, auth_event("UPDATE", record, record))
        assert late.json["outcome"] == "ignored"
        assert profile(db, user_id)["email"] is None

    def test_delete_mode_removes_the_profile(self, database_url, tmp_path, db):
        app = make_app(database_url, tmp_path, SUPABASE_USERS_ON_DELETE="delete")
        try:
            client = app.test_client()
            record = auth_user(f"del{uuid.uuid4().hex[:8]}@x.test")
            post_hmac(client, auth_event("INSERT", record))
            assert post_hmac(client, auth_event("DELETE", None, record)).json["outcome"] == "applied"
            assert profile(db, record["id"]) is None
        finally:
            app.extensions["viewzenix"].close()


class TestHealth:
    def test_health_reports_last_events_counts_and_percentiles(self, hooks):
        user_id = uuid.uuid4()
        post_hmac(hooks, symbol_event("INSERT", symbol_row(user_id, symbol="SPY")))
        post_hmac(hooks, symbol_event("INSERT", symbol_row(user_id, symbol="SPY")))
        hooks.post(URL, data=b"{}")
        response = hooks.get("/hooks/supabase/health")
        assert response.status_code == 200
        body = response.json
        assert (body["status"], body["database"], body["schemes"]) == ("ok", "ok", ["hmac", "standard"])
        watchers = body["tables"]["public.user_symbols"]
        assert watchers["last_event_at"] and watchers["last_applied_at"]
        applied = watchers["outcomes"]["applied"]
        assert applied["count"] >= 1
        assert 0 <= applied["p50_ms"] <= applied["p95_ms"] <= applied["p99_ms"]
        assert watchers["outcomes"]["ignored"]["count"] >= 1
        assert body["tables"]["unrouted"]["outcomes"]["refused"]["count"] >= 1
