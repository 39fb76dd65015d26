"""What the Supabase receiver's tests left untested: ``updated_at`` on watcher upserts, the 503
``apply_failed`` and ``apply_timeout`` paths (a real check violation, a real lock wait past the
per-transaction statement timeout), the 413 path, concurrent sign-ups colliding on a username,
and the specification's own manual test body answered with a message saying what to add."""

from __future__ import annotations

import threading
import uuid

import psycopg
import pytest
from test_supabase_hooks import (
    URL,
    auth_event,
    auth_user,
    events_since,
    last_event_id,
    make_app,
    post_hmac,
    profile,
    symbol_event,
    symbol_row,
)

pytestmark = pytest.mark.db


@pytest.fixture(scope="module")
def hooks_app(app, database_url):
    # The session app's folder: its credentials key (a process-wide cipher) stays the one in use.
    hooks = make_app(
        database_url, app.extensions["viewzenix"].config.DATA_DIR, HOOK_STATEMENT_TIMEOUT_MS="300"
    )
    yield hooks
    hooks.extensions["viewzenix"].close()


@pytest.fixture()
def hooks(hooks_app):
    return hooks_app.test_client()


def watcher_times(db, user_id, symbol="BTC/USDT"):
    with db.transaction() as conn:
        return conn.execute(
            "select created_at, updated_at, strategy from public.watchers where user_id = %s and symbol = %s",
            (user_id, symbol),
        ).fetchone()


def test_an_applied_update_moves_updated_at_and_an_ignored_replay_does_not(hooks, db):
    user_id = uuid.uuid4()
    v1 = symbol_row(user_id, updated_at="2026-11-27T10:00:00+00:00")
    assert post_hmac(hooks, symbol_event("INSERT", v1)).json["outcome"] == "applied"
    first = watcher_times(db, user_id)
    assert first["created_at"] == first["updated_at"]

    v2 = {**v1, "strategy": {"v": 2}, "updated_at": "2026-11-27T10:01:00+00:00"}
    assert post_hmac(hooks, symbol_event("UPDATE", v2, v1)).json["outcome"] == "applied"
    second = watcher_times(db, user_id)
    assert second["strategy"] == {"v": 2}
    assert second["created_at"] == first["created_at"]
    assert second["updated_at"] > first["updated_at"]

    assert post_hmac(hooks, symbol_event("UPDATE", v2, v1)).json["outcome"] == "ignored"
    assert watcher_times(db, user_id)["updated_at"] == second["updated_at"]


def test_a_symbol_longer_than_the_column_is_a_422_not_a_database_failure(hooks, db):
    symbol = "A" * 20 + "." + "B" * 20  # 41 characters: the pattern allows it, the column holds 32
    answer = post_hmac(hooks, symbol_event("INSERT", symbol_row(uuid.uuid4(), symbol=symbol)))
    assert answer.status_code == 422
    assert "at most 32 characters" in answer.json["errors"]["symbol"]


@pytest.mark.parametrize("lookalike", ["ſPY", "ıBM"])
def test_a_lookalike_symbol_is_refused_as_sent_not_watched_as_the_real_one(hooks, db, lookalike):
    answer = post_hmac(hooks, symbol_event("INSERT", symbol_row(uuid.uuid4(), symbol=lookalike)))
    assert answer.status_code == 422
    assert "symbol" in answer.json["errors"]


def test_a_database_failure_while_applying_is_503_apply_failed_recorded_as_received(hooks, db):
    # A real check violation: a constraint the event cannot meet, added for this test only.
    symbol = "FAILME"
    with db.transaction() as conn:
        conn.execute("alter table public.watchers add constraint test_apply_fails check (symbol <> 'FAILME')")
    marker = last_event_id(db)
    try:
        answer = post_hmac(hooks, symbol_event("INSERT", symbol_row(uuid.uuid4(), symbol=symbol)))
    finally:
        with db.transaction() as conn:
            conn.execute("alter table public.watchers drop constraint test_apply_fails")
    assert answer.status_code == 503
    assert answer.json["code"] == "apply_failed"
    assert answer.json["message"].startswith("The event was recorded but could not be applied")
    assert answer.headers["Retry-After"] == "5"
    [event] = events_since(db, marker)
    assert (event["outcome"], event["reason"], event["http_status"]) == ("received", "apply_failed", 503)
    assert "CheckViolation" in event["detail"]["error"]


def test_a_transaction_past_the_statement_timeout_is_503_with_retry_after(hooks, db, database_url):
    user_id = uuid.uuid4()
    row = symbol_row(user_id, updated_at="2026-11-27T10:00:00+00:00")
    assert post_hmac(hooks, symbol_event("INSERT", row)).status_code == 200
    newer = {**row, "strategy": {"v": 9}, "updated_at": "2026-11-27T11:00:00+00:00"}
    marker = last_event_id(db)
    with psycopg.connect(database_url) as blocker:  # holds the watcher's row lock until rollback
        blocker.execute("select 1 from public.watchers where user_id = %s for update", (user_id,))
        answer = post_hmac(hooks, symbol_event("UPDATE", newer, row))
        blocker.rollback()
    assert answer.status_code == 503
    assert answer.json["code"] == "apply_timeout"
    assert "HOOK_STATEMENT_TIMEOUT_MS" in answer.json["message"]
    assert answer.headers["Retry-After"] == "5"
    [event] = events_since(db, marker)
    assert (event["outcome"], event["reason"]) == ("received", "statement_timeout")
    assert event["latency_ms"] >= 300
    # The bound was this transaction's only: the pool's connections keep the web processes'
    # own statement timeout (WEB_DB_STATEMENT_TIMEOUT_MS, 5 s by default), not the hook's.
    runtime = hooks.application.extensions["viewzenix"]
    assert runtime.config.WEB_DB_STATEMENT_TIMEOUT_MS == 5000
    with runtime.db.transaction() as conn:
        assert conn.execute("show statement_timeout").fetchone()["statement_timeout"] == "5s"
    # Resent once the lock is gone, it applies.
    assert post_hmac(hooks, symbol_event("UPDATE", newer, row)).json["outcome"] == "applied"


def test_a_body_over_256_kib_is_413_and_recorded_without_the_body(hooks, db):
    marker = last_event_id(db)
    raw = b'{"type": "INSERT", "pad": "' + b"x" * (256 * 1024) + b'"}'
    answer = hooks.post(URL, data=raw, content_type="application/json", headers={"x-hmac-sha256": "00"})
    assert answer.status_code == 413
    assert answer.json == {
        "code": "payload_too_large",
        "status": 413,
        "message": "The body is larger than 256 KiB.",
    }
    [event] = events_since(db, marker)
    assert (event["outcome"], event["reason"], event["http_status"]) == ("refused", "payload_too_large", 413)
    assert event["body_bytes"] == 256 * 1024 + 1  # read up to the limit plus one byte, no more


def test_concurrent_sign_ups_with_the_same_email_name_get_distinct_usernames(hooks_app, db):
    local = f"kim{uuid.uuid4().hex[:8]}"
    records = [auth_user(f"{local}@d{n}.test") for n in range(6)]
    barrier = threading.Barrier(len(records))
    answers: dict[str, int] = {}

    def sign_up(record):
        client = hooks_app.test_client()
        barrier.wait()
        answers[record["id"]] = post_hmac(client, auth_event("INSERT", record)).status_code

    threads = [threading.Thread(target=sign_up, args=(r,)) for r in records]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert set(answers.values()) == {200}
    names = [profile(db, r["id"])["username"] for r in records]
    assert len(set(names)) == len(names)
    assert local in names and all(n.startswith(local) for n in names)


def test_the_specifications_manual_test_body_says_what_to_add(hooks):
    # The specification's curl: no schema/table, and a user id that is not a UUID.
    spec = {"type": "INSERT", "record": {"user_id": "test-uuid", "symbol": "BTC/USDT", "timeframe": "1h"}}
    answer = post_hmac(hooks, spec)
    assert answer.status_code == 400
    body = answer.json
    assert body["code"] == "malformed_payload" and body["errors"]["reason"] == "missing_table"
    assert '"schema": "public"' in body["message"] and '"table": "user_symbols"' in body["message"]
    assert '"schema": "auth", "table": "users"' in body["message"]

    fixed = {**spec, "schema": "public", "table": "user_symbols"}
    answer = post_hmac(hooks, fixed)
    assert answer.status_code == 422
    assert answer.json["errors"]["user_id"] == "must be a UUID (e.g. 00000000-0000-4000-8000-000000000001)"


def test_deliveries_and_drift_checks_are_exported_to_prometheus(hooks, db):
    from test_metrics import scrape, value

    before = scrape(hooks)
    user_id = uuid.uuid4()
    assert post_hmac(hooks, symbol_event("INSERT", symbol_row(user_id))).status_code == 200
    assert (
        post_hmac(hooks, symbol_event("INSERT", symbol_row(user_id, symbol="not a symbol"))).status_code
        == 422
    )
    assert post_hmac(hooks, b"{nope").status_code == 400
    with db.transaction() as conn:
        conn.execute(
            "insert into private.sync_checks (target, source, finished_at, source_rows, target_rows, "
            "missing, extra, differing, drift_rate, repaired, error) "
            "values ('watchers', 'same', now(), 10, 8, 2, 0, 0, 20.00, 2, null)"
        )
    after = scrape(hooks)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    source = "public.user_symbols"
    assert moved("viewzenix_supabase_hook_events_total", source=source, outcome="applied") == 1
    assert moved("viewzenix_supabase_hook_events_total", source=source, outcome="refused") == 1
    assert moved("viewzenix_supabase_hook_events_total", source="unrouted", outcome="refused") == 1
    assert moved("viewzenix_supabase_hook_duration_seconds_count", source=source) == 2
    with db.transaction() as conn:
        newest = conn.execute(
            "select max(received_at) as at from private.hook_events where table_name = 'user_symbols'"
        ).fetchone()["at"]
    assert value(
        after, "viewzenix_supabase_hook_last_event_timestamp_seconds", source=source
    ) == pytest.approx(newest.timestamp())
    assert value(after, "viewzenix_supabase_sync_drift_rate", target="watchers") == 20.0
    assert value(after, "viewzenix_supabase_sync_repaired_rows", target="watchers") == 2
    assert value(after, "viewzenix_supabase_sync_check_failed", target="watchers") == 0
