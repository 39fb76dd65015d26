"""``POST /api/admin/sync/<table>`` and ``POST /api/admin/sync/users/<user_id>``: the drift check
and repair for operators without a shell, on real databases — a target database of our own with
the migrations, and the app's project (a second database with ``auth.users`` and
``public.user_symbols``) as the source (SYNC_SOURCE_DATABASE_URL). Every call is in the audit.
"""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from builders import fresh_database

import config as app_config

pytestmark = pytest.mark.db

TARGET_DB = "viewzenix_test_admin_sync"


@pytest.fixture(scope="module")
def sync_app(app, database_url, source_database_url):
    from viewzenix import create_app

    url = fresh_database(database_url, TARGET_DB)
    sync = create_app(
        app_config.TestingConfig(
            {
                "DATABASE_URL": url,
                # The session app's folder: its credentials key (a process-wide cipher) stays the one.
                "DATA_DIR": str(app.extensions["viewzenix"].config.DATA_DIR),
                "SYNC_SOURCE_DATABASE_URL": source_database_url,
            }
        )
    )
    yield sync
    sync.extensions["viewzenix"].close()


@pytest.fixture()
def source(source_database_url):
    with psycopg.connect(source_database_url, autocommit=True) as conn:
        conn.execute("truncate public.user_symbols")
        conn.execute("delete from auth.users")
    return source_database_url


@pytest.fixture()
def runtime(sync_app):
    runtime = sync_app.extensions["viewzenix"]
    with runtime.db.transaction() as conn:
        conn.execute("truncate public.watchers, private.hook_tombstones")
    return runtime


@pytest.fixture()
def api(sync_app):
    return sync_app.test_client()


def headers_for(runtime, *, admin: bool) -> dict[str, str]:
    from viewzenix.cli import ensure_local_user

    email = f"{'admin' if admin else 'user'}-{uuid.uuid4().hex[:8]}@example.test"
    user_id = ensure_local_user(runtime.db, email)
    claims = {"app_metadata": {"role": "admin"}} if admin else {}
    return {"Authorization": f"Bearer {runtime.local_signer.issue(user_id, email, **claims)}"}


def add_auth_user(url, email, user_id=None) -> uuid.UUID:
    user_id = user_id or uuid.uuid4()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "insert into auth.users (id, email, raw_user_meta_data) values (%s, %s, %s)",
            (user_id, email, json.dumps({"full_name": "Ann Lee"})),
        )
    return user_id


def test_a_table_sync_reports_and_repairs_and_is_audited(api, runtime, source):
    user = add_auth_user(source, "ann@example.test")
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(
            "insert into public.user_symbols (user_id, symbol, timeframe, strategy) "
            "values (%s, 'AAPL', '1h', '{}')",
            (user,),
        )
    headers = headers_for(runtime, admin=True)

    answer = api.post("/api/admin/sync/watchers", json={}, headers=headers)

    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert (body["target"], body["source"], body["missing"], body["repaired"]) == (
        "watchers",
        "database",
        1,
        1,
    )
    assert body["keys"]["repaired_keys"] == [f"{user}/AAPL/1h"]
    assert body["removals_refused"] is False
    with runtime.db.transaction() as conn:
        assert conn.execute("select symbol from public.watchers where user_id = %s", (user,)).fetchall() == [
            {"symbol": "AAPL"}
        ]
    action = body["action"]
    assert (action["action"], action["result"], action["job_id"]) == ("sync_table", "done", None)
    assert action["detail"]["repaired"] == 1
    audit = api.get("/api/admin/audit", headers=headers, query_string={"action": "sync_table"}).get_json()
    assert audit["actions"][0]["id"] == action["id"]

    again = api.post(
        "/api/admin/sync/user_symbols", headers=headers
    ).get_json()  # the source's name works too
    assert (again["missing"], again["repaired"], again["drift_rate"]) == (0, 0, 0.0)


def test_a_table_sync_skips_removals_above_half_unless_forced(api, runtime, source):
    from viewzenix.repositories.hook_sync import upsert_watcher

    with runtime.db.transaction() as conn:
        for symbol in ("AAPL", "MSFT"):
            upsert_watcher(
                conn,
                {"user_id": uuid.uuid4(), "symbol": symbol, "timeframe": "1h", "strategy": {}, "active": True}
                | {"updated_at": None},
            )
    headers = headers_for(runtime, admin=True)

    refused = api.post("/api/admin/sync/watchers", json={}, headers=headers).get_json()
    assert (refused["extra"], refused["repaired"], refused["removals_refused"]) == (2, 0, True)
    assert refused["action"]["code"] == "removals_refused"
    forced = api.post("/api/admin/sync/watchers", json={"force": True}, headers=headers).get_json()
    assert (forced["repaired"], forced["removals_refused"]) == (2, False)


def test_an_unknown_table_is_404_naming_the_tables(api, runtime):
    answer = api.post("/api/admin/sync/orders", headers=headers_for(runtime, admin=True))
    assert answer.status_code == 404
    body = answer.get_json()
    assert body["code"] == "unknown_table" and "watchers" in body["message"] and "users" in body["message"]


def test_a_users_missing_profile_is_created_then_in_step_then_updated(api, runtime, source):
    headers = headers_for(runtime, admin=True)
    user = add_auth_user(source, "bo.chen@example.test")

    first = api.post(f"/api/admin/sync/users/{user}", headers=headers)
    assert first.status_code == 200, first.get_json()
    body = first.get_json()
    assert (body["state"], body["repaired"], body["source"]) == ("missing", True, "database")
    assert body["profile"]["email"] == "bo.chen@example.test"
    assert body["profile"]["username"] == "bo_chen"
    assert body["profile"]["display_name"] == "Ann Lee"
    assert body["action"]["action"] == "sync_user" and body["action"]["detail"]["state"] == "missing"

    second = api.post(f"/api/admin/sync/users/{user}", headers=headers).get_json()
    assert (second["state"], second["repaired"]) == ("in_step", False)

    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("update auth.users set email = 'bo@new.example.test' where id = %s", (user,))
    checked = api.post(f"/api/admin/sync/users/{user}", json={"repair": False}, headers=headers).get_json()
    assert (checked["state"], checked["repaired"]) == ("differing", False)
    assert checked["profile"]["email"] == "bo.chen@example.test"  # only checked
    fixed = api.post(f"/api/admin/sync/users/{user}", headers=headers).get_json()
    assert (fixed["state"], fixed["repaired"], fixed["profile"]["email"]) == (
        "differing",
        True,
        "bo@new.example.test",
    )


def test_a_profile_whose_user_is_gone_from_the_source_is_anonymised(api, runtime, source):
    headers = headers_for(runtime, admin=True)
    user = add_auth_user(source, "gone@example.test")
    api.post(f"/api/admin/sync/users/{user}", headers=headers)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("delete from auth.users where id = %s", (user,))

    body = api.post(f"/api/admin/sync/users/{user}", headers=headers).get_json()

    assert (body["state"], body["repaired"]) == ("extra", True)
    assert body["profile"]["email"] is None and body["profile"]["deleted_at"] is not None


def test_a_user_neither_side_knows_is_404_and_recorded(api, runtime, source):
    headers = headers_for(runtime, admin=True)
    user = uuid.uuid4()
    answer = api.post(f"/api/admin/sync/users/{user}", headers=headers)
    assert answer.status_code == 404
    assert answer.get_json()["code"] == "user_not_found"
    audit = api.get("/api/admin/audit", headers=headers, query_string={"action": "sync_user"}).get_json()
    latest = audit["actions"][0]
    assert (latest["result"], latest["code"], latest["detail"]["user_id"]) == (
        "refused",
        "user_not_found",
        str(user),
    )


def test_the_sync_tools_are_for_admins_only(api, runtime):
    headers = headers_for(runtime, admin=False)
    for path in ("/api/admin/sync/watchers", f"/api/admin/sync/users/{uuid.uuid4()}"):
        answer = api.post(path, headers=headers)
        assert answer.status_code == 403 and answer.get_json()["code"] == "admin_required"
